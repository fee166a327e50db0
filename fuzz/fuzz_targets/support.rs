//! Shared by the fuzz targets (`mod support;`): plist value equality in
//! which a NaN real equals a NaN real. A round trip keeps NaN, but `==`
//! cannot see that, and skipping the comparison whenever NaN appears would
//! skip it for every value holding one (or a string spelling "NaN").

use plist::Value;

/// `a == b`, except that NaN reals compare equal to each other.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Dictionary(x), Value::Dictionary(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `v` holds a NaN real anywhere.
pub fn has_nan(v: &Value) -> bool {
    match v {
        Value::Real(r) => r.is_nan(),
        Value::Array(a) => a.iter().any(has_nan),
        Value::Dictionary(d) => d.values().any(has_nan),
        _ => false,
    }
}

/// A decoded value re-encoded and decoded again is the same value: equal,
/// or equal up to NaN (the one value `==` cannot match) when it holds one.
pub fn assert_round_trip<T: PartialEq + std::fmt::Debug>(
    before: &T,
    after: &T,
    plist: impl Fn(&T) -> Value,
) {
    if before == after {
        return;
    }
    let (a, b) = (plist(before), plist(after));
    assert!(
        has_nan(&a) && same(&a, &b),
        "round trip changed the value:\n{before:?}\n{after:?}"
    );
}

/// Two decodings of the same bytes agree: the same value (up to NaN, as in
/// [`assert_round_trip`]) or the same refusal.
// Used by the `checkin` and `report` targets only; each target compiles this
// module on its own.
#[allow(dead_code)]
pub fn assert_same_outcome<
    T: PartialEq + std::fmt::Debug,
    E: std::fmt::Display + std::fmt::Debug,
>(
    one: &Result<T, E>,
    other: &Result<T, E>,
    plist: impl Fn(&T) -> Value,
) {
    match (one, other) {
        (Ok(a), Ok(b)) => assert_round_trip(a, b, plist),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("decode paths disagree: {one:?} / {other:?}"),
    }
}
