"""Reading web input: WARC/WET records, HTTP payloads, input formats, HTML -> text, document rows."""
