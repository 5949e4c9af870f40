//! Resource quantities (`500m`, `1Gi`, `1e3`): never a panic when parsed, rounded, printed or valued.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rkube::apiserver::wire::quantity::Quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(q) = Quantity::parse(s) {
        let printed = q.to_string();
        let _ = q.value();
        let _ = q.milli_value();
        let _ = q.is_zero();
        let _ = q.is_negative();
        let _ = q.round_up_milli().to_string();
        // What is printed parses again, within parse's 36 significant digits: printing in a smaller
        // suffix can add digits (`...9999T` prints as `...900u`), a known edge left as it is.
        let digits = printed.bytes().filter(u8::is_ascii_digit).count();
        assert!(Quantity::parse(&printed).is_ok() || digits > 36, "{s:?} printed as {printed:?}");
    }
});
