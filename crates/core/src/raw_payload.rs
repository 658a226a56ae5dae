//! Raw source payloads as they are stored: compressed (zstd, one frame per record), because
//! they are most of a record's bytes (3.7–15 KB an order, OData's `__metadata` on every line)
//! and are read back only for `include_remote_data`. Decompressed, they are the source's
//! bytes exactly.

use std::cell::RefCell;

/// How hard to compress: the fastest level, since compression runs for every record a sync
/// maps and a higher level saves little more on records this size.
const LEVEL: i32 = 1;

/// The first bytes of every zstd frame; JSON text never starts with them.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Larger than any raw payload a source sends: a frame claiming more is damaged.
const MAX_TEXT: u64 = 256 << 20;

thread_local! {
    // One compression and one decompression context per thread, made once: making a
    // context for every record cost more than compressing it (6 % of a sync's CPU).
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress_frame(text: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(LEVEL)?);
        }
        match slot.as_mut() {
            Some(compressor) => compressor.compress(text),
            None => zstd::bulk::compress(text, LEVEL),
        }
    })
}

fn decompress_frame(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_TEXT => size as usize,
        // No size in the frame (not one we wrote): decode as a stream.
        Ok(None) => return zstd::stream::decode_all(frame),
        _ => return Err(std::io::Error::other("damaged frame")),
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(frame, size),
            None => zstd::bulk::decompress(frame, size),
        }
    })
}

/// A raw payload ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPayload(Vec<u8>);

impl RawPayload {
    /// `text`, compressed. Should compression fail (it cannot, in memory), the text is kept
    /// as it is: [`RawPayload::text`] reads both.
    pub fn compress(text: &str) -> Self {
        match compress_frame(text.as_bytes()) {
            Ok(frame) => RawPayload(frame),
            Err(_) => RawPayload(text.as_bytes().to_vec()),
        }
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The payload's text, from stored bytes: a zstd frame, or (stored as it was) UTF-8.
    pub fn text(stored: &[u8]) -> Result<String, String> {
        let bytes = if stored.starts_with(&ZSTD_MAGIC) {
            decompress_frame(stored).map_err(|e| format!("raw payload: {e}"))?
        } else {
            stored.to_vec()
        };
        String::from_utf8(bytes).map_err(|_| "raw payload: not UTF-8".to_string())
    }
}

impl From<&str> for RawPayload {
    fn from(text: &str) -> Self {
        RawPayload::compress(text)
    }
}

impl From<String> for RawPayload {
    fn from(text: String) -> Self {
        RawPayload::compress(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_the_same_bytes_in_far_fewer() {
        let line = r#"{"__metadata":{"id":"https://h/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrderItem(PurchaseOrder='4500000001',PurchaseOrderItem='10')","uri":"https://h/x","type":"API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderItemType"},"NetPriceAmount":"12.50","LastChangeDateTime":"\/Date(1667823962922)\/"}"#;
        let text = format!("[{}]", vec![line; 20].join(","));
        let payload = RawPayload::compress(&text);
        assert!(
            payload.as_bytes().len() * 8 < text.len(),
            "{} of {}",
            payload.as_bytes().len(),
            text.len()
        );
        assert_eq!(RawPayload::text(payload.as_bytes()).unwrap(), text);
    }

    #[test]
    fn text_stored_as_it_was_reads_as_it_is() {
        assert_eq!(RawPayload::text(br#"{"a":1}"#).unwrap(), r#"{"a":1}"#);
        assert!(RawPayload::text(&[0xff, 0xfe]).is_err());
        // A damaged frame is an error, not a panic.
        let mut frame = RawPayload::compress(&"x".repeat(1000)).0;
        frame.truncate(frame.len() / 2);
        assert!(RawPayload::text(&frame).is_err());
    }
}
