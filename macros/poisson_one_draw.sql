{#- Returns the Poisson(1) draw (0, 1, 2, ...) of the uniform number `uniform` in [0, 1), by
    the inverse of Poisson(1)'s distribution function (P(X <= k) = e^-1 * sum of 1/j! for
    j <= k): the weight of one observation in one replicate of a Poisson bootstrap. Draws
    above 9 (probability 1e-7) count as 10. -#}
{% macro poisson_one_draw(uniform) -%}
    {%- set cumulative = [0.3678794412, 0.7357588823, 0.9196986029, 0.9810118431, 0.9963401532,
                          0.9994058152, 0.9999167589, 0.9999897508, 0.9999988748, 0.9999998886] -%}
    case
        {%- for bound in cumulative %}
            when {{ uniform }} < {{ bound }} then {{ loop.index0 }}
        {%- endfor %}
        else 10
    end
{%- endmacro %}
