//! `skab-loadtest`: school-day load generator (see issue "Loadtest"); not built yet.

fn main() {
    eprintln!("skab-loadtest: no scenarios are implemented yet");
    std::process::exit(2);
}
