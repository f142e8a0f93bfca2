fn main() {
    eprintln!("skylapse: the service entry point is being built; see README.md");
    std::process::exit(2);
}
