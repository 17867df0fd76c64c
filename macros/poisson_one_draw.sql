{#- Returns the Poisson(1) draw (0, 1, 2, ...) of the uniform number `uniform` in [0, 1), by
    the inverse of Poisson(1)'s distribution function (P(X <= k) = e^-1 * sum of 1/j! for
    j <= k): the weight of one observation in one replicate of a Poisson bootstrap. Draws
    above 9 (probability 1e-7) count as 10. -#}
{% macro poisson_one_draw(uniform) -%}
    case
        when {{ uniform }} < 0.3678794412 then 0
        when {{ uniform }} < 0.7357588823 then 1
        when {{ uniform }} < 0.9196986029 then 2
        when {{ uniform }} < 0.9810118431 then 3
        when {{ uniform }} < 0.9963401532 then 4
        when {{ uniform }} < 0.9994058152 then 5
        when {{ uniform }} < 0.9999167589 then 6
        when {{ uniform }} < 0.9999897508 then 7
        when {{ uniform }} < 0.9999988748 then 8
        when {{ uniform }} < 0.9999998886 then 9
        else 10
    end
{%- endmacro %}
