//! Element-wise math functions (<https://prometheus.io/docs/prometheus/latest/querying/functions/#abs>,
//! `ceil`, `floor`, `exp`, `ln`, `log2`, `log10`, `sqrt`, `sgn`, `round`, `clamp*` and the
//! trigonometric functions <https://prometheus.io/docs/prometheus/latest/querying/functions/#trigonometric-functions>).

/// The element-wise function called `name`, if it is one.
pub(crate) fn unary(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// `round(v, to_nearest)`: rounds half up, as Prometheus (`math.Floor(v*inv + 0.5) / inv`).
pub(crate) fn round(v: f64, to_nearest: f64) -> f64 {
    let inv = 1.0 / to_nearest;
    (v * inv + 0.5).floor() / inv
}

/// `clamp(v, min, max)`; NaN when min > max is handled by the caller (no output).
pub(crate) fn clamp(v: f64, min: f64, max: f64) -> f64 {
    // math.Max(min, math.Min(max, v)) with Go's NaN propagation.
    let m = if v.is_nan() || max.is_nan() {
        f64::NAN
    } else {
        v.min(max)
    };
    if m.is_nan() || min.is_nan() {
        f64::NAN
    } else {
        m.max(min)
    }
}
