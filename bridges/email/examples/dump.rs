fn main() {
    for p in std::env::args().skip(1) {
        let raw = std::fs::read(&p).unwrap();
        match switchboard_email::parse::parse(&raw) {
            Ok(m) => {
                println!(
                    "=== {p}\nkind={:?} from={:?} subj={:?}\nTEXT:{:?}\nHTML:{:?}\nFILES:{:?}",
                    m.kind,
                    m.from_address,
                    m.subject,
                    m.new_text,
                    m.html,
                    m.files
                        .iter()
                        .map(|f| (&f.name, &f.mime, f.data.len()))
                        .collect::<Vec<_>>()
                );
            }
            Err(e) => println!("=== {p}\nERR {e}"),
        }
    }
}
