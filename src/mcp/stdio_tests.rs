use super::*;

async fn lines(input: &'static [u8], max: usize) -> Vec<String> {
    let mut reader = BufReader::with_capacity(4, input);
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(&mut reader, &mut line, max).await.unwrap() {
            LineRead::Eof => return out,
            LineRead::TooLong(n) => out.push(format!("<{n} bytes dropped>")),
            LineRead::Line => out.push(String::from_utf8_lossy(&line).into_owned()),
        }
    }
}

#[tokio::test]
async fn long_lines_are_dropped_whole_and_reading_goes_on() {
    let got = lines(b"short\nthis line is too long\nok\nlast-without-newline", 10).await;
    assert_eq!(got, ["short\n", "<22 bytes dropped>", "ok\n", "<20 bytes dropped>"]);
}

#[tokio::test]
async fn a_final_line_without_newline_is_read() {
    assert_eq!(lines(b"a\nb", 10).await, ["a\n", "b"]);
    assert!(lines(b"", 10).await.is_empty());
}

#[test]
fn stderr_tail_keeps_the_last_bytes_and_lines() {
    let tail = StderrTail::new(16);
    tail.push(b"first line\nsecond line\n");
    tail.push(b"third\n");
    // 16 bytes: "ond line\nthird\n" plus one byte before it.
    assert_eq!(tail.last_lines(1), "third");
    assert!(!tail.last_lines(10).contains("first"));
}

#[test]
fn trim_line_drops_whitespace_and_a_byte_order_mark() {
    assert_eq!(trim_line(b"  {\"a\":1}\r\n"), b"{\"a\":1}");
    assert_eq!(trim_line(b"\xEF\xBB\xBF{}\n"), b"{}");
    assert_eq!(trim_line(b"   \n"), b"");
}
