//! `skab`: the WebDAV server binary (being built; see issue "Server").

fn main() {
    eprintln!("skab: the server is not built yet");
    std::process::exit(2);
}
