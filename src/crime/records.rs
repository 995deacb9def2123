//! Reading crime CSV files into records, shared by the police batch and public street-level
//! parsers: byte-order mark stripped, quoting undone by the `csv` crate, any column count accepted
//! (so it can be reported), fields decoded as UTF-8 one by one, and 1-based line numbers that
//! survive CRLF line ends and quoted line breaks.

/// The UTF-8 byte-order mark some senders put first.
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// WGS84 latitudes and longitudes the domain page accepts (Great Britain and its waters).
pub(crate) const LATITUDE_RANGE_DEG: (f64, f64) = (49.5, 61.5);
pub(crate) const LONGITUDE_RANGE_DEG: (f64, f64) = (-8.5, 2.6);

/// One CSV record: its line and its fields (or why they are not text).
pub(crate) struct Record {
    /// 1-based line where the record starts.
    pub line: u64,
    /// How many fields the record has.
    pub columns: usize,
    /// The fields, or the index of the first that is not UTF-8.
    pub fields: Result<Vec<String>, usize>,
}

/// Splits the file into records (BOM stripped, quoting undone, any column count accepted).
pub(crate) fn read_records(bytes: &[u8]) -> Vec<Record> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter::new(bytes);
    // Reading from a byte slice with `flexible` has no failure mode; stop at one all the same.
    while let Ok(true) = reader.read_byte_record(&mut record) {
        let line = lines.line_of_record_at(record.position().map_or(0, |p| p.byte()));
        let fields = record
            .iter()
            .enumerate()
            .map(|(i, f)| std::str::from_utf8(f).map(str::to_string).map_err(|_| i))
            .collect();
        records.push(Record {
            line,
            columns: record.len(),
            fields,
        });
    }
    records
}

/// 1-based line numbers of records, from their byte offsets.
///
/// The `csv` crate's own line count puts a record that follows a `\r\n` on the line before, so
/// lines are counted here: a record starts at its first byte that is not a line break.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record whose position is `byte`; records must come in file order.
    fn line_of_record_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start > self.offset {
            let newlines = self.bytes[self.offset..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line += newlines as u64;
            self.offset = start;
        }
        self.line
    }
}

/// A finite decimal number, or `None`.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_crlf_blank_lines_and_quoted_line_breaks() {
        let bytes = b"\r\n\r\na,b\r\n\"x\r\ny\",c\r\n\r\nd\ne\n";
        let records = read_records(bytes);
        let lines: Vec<_> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 7, 8]);
        let columns: Vec<_> = records.iter().map(|r| r.columns).collect();
        assert_eq!(columns, [2, 2, 1, 1]);
        assert_eq!(
            records[1].fields,
            Ok(vec!["x\r\ny".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn a_bom_is_stripped_and_bad_utf8_names_its_field() {
        let records = read_records(b"\xEF\xBB\xBFa,b\nc,\xFF\n");
        assert_eq!(
            records[0].fields,
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(records[1].fields, Err(1));
        assert_eq!(records[1].line, 2);
    }
}
