//! `skab`: the WebDAV server binary (being built; see issue "Server").

#[allow(dead_code)]
mod dav;
mod limits;

fn main() {
    eprintln!("skab: the server is not built yet");
    std::process::exit(2);
}
