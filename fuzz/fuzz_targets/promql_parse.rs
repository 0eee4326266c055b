//! The PromQL parser on arbitrary text: no input may panic (nesting depth is bounded, not a
//! stack overflow), and an expression that parses must print (`Display`, Prometheus's
//! `String()`) to text that parses again to the same printed form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(e) = edgeprom::promql::parse(text) else {
        return;
    };
    let _ = e.value_type();
    let printed = e.to_string();
    match edgeprom::promql::parse(&printed) {
        Ok(again) => assert_eq!(
            printed,
            again.to_string(),
            "printing is not a fixed point for input {text:?}"
        ),
        Err(err) => panic!("{text:?} printed as {printed:?}, which does not parse: {err}"),
    }
});
