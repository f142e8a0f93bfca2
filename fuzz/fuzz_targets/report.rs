#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| skylapse::fuzzing::report(data));
