fn main() {
    eprintln!("lambda-img: not yet wired");
    std::process::exit(2);
}
