fn main() {
    eprintln!("camera-sim: not built yet");
    std::process::exit(2);
}
