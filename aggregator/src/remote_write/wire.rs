//! Prometheus remote write 1.0 on the wire: a `prometheus.WriteRequest` in protobuf,
//! compressed with snappy's block format (not its framed format).
//!
//! The messages, with the field numbers of Prometheus' `prompb/remote.proto` and
//! `prompb/types.proto` (only the fields protocol 1.0 needs):
//!
//! ```proto
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }  // ms since the epoch
//! ```
//!
//! They are written here with prost's field encoders rather than through generated structs:
//! a series' labels are encoded once ([`encode_label`], kept in
//! [`super::series::Series`]) and copied into each request as bytes, so that a request costs
//! no per-label allocation at fleet scale. The unit tests decode what is written with
//! prost-derived structs of the messages above.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// `Content-Type` of a request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a request.
pub const CONTENT_ENCODING: &str = "snappy";
/// `X-Prometheus-Remote-Write-Version` of a request (protocol 1.0).
pub const VERSION: &str = "0.1.0";

fn string_field(tag: u32, s: &str, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.extend_from_slice(s.as_bytes());
}

fn string_field_len(tag: u32, s: &str) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

/// Appends one `Label` as field 1 of a `TimeSeries`.
pub fn encode_label(name: &str, value: &str, buf: &mut Vec<u8>) {
    let len = string_field_len(1, name) + string_field_len(2, value);
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    string_field(1, name, buf);
    string_field(2, value, buf);
}

/// Length of an encoded `Sample`.
fn sample_len(ts_ms: i64) -> usize {
    // value: key + 8 bytes; timestamp: key + varint.
    1 + 8 + 1 + encoded_len_varint(ts_ms as u64)
}

/// Appends one `TimeSeries` (field 1 of `WriteRequest`): `labels` as [`encode_label`] wrote
/// them, and its samples `(timestamp ms, value)` in time order.
pub fn encode_series(labels: &[u8], samples: &[(i64, f64)], buf: &mut Vec<u8>) {
    let body: usize = labels.len()
        + samples
            .iter()
            .map(|(t, _)| {
                let n = sample_len(*t);
                1 + encoded_len_varint(n as u64) + n
            })
            .sum::<usize>();
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(body as u64, buf);
    buf.extend_from_slice(labels);
    for (t, v) in samples {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(sample_len(*t) as u64, buf);
        encode_key(1, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
        encode_key(2, WireType::Varint, buf);
        // int64 on the wire: two's complement as a varint (timestamps are positive).
        encode_varint(*t as u64, buf);
    }
}

/// Compresses an encoded `WriteRequest` with snappy's block format.
pub fn compress(request: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(request)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use prost::Message as _;

    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// Decodes a compressed request.
    pub fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .expect("snappy block");
        WriteRequest::decode(raw.as_slice()).expect("a WriteRequest")
    }

    /// Decodes labels as [`encode_label`] writes them.
    pub fn decode_labels(labels: &[u8]) -> Vec<(String, String)> {
        TimeSeries::decode(labels)
            .expect("labels")
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect()
    }

    #[test]
    fn a_request_decodes_as_prometheus_messages() {
        let mut a = Vec::new();
        encode_label("__name__", "smon_cpu_percent", &mut a);
        encode_label("host", "n1", &mut a);
        let mut b = Vec::new();
        encode_label("__name__", "smon_load1", &mut b);
        let mut req = Vec::new();
        // A zero value and a large timestamp: both must survive (proto3 defaults included).
        encode_series(
            &a,
            &[(1_700_000_000_123, 12.5), (1_700_000_001_123, 0.0)],
            &mut req,
        );
        encode_series(&b, &[(i64::from(u32::MAX) * 1000, f64::MAX)], &mut req);
        let got = decode(&compress(&req).expect("compress"));
        let label = |n: &str, v: &str| Label {
            name: n.into(),
            value: v.into(),
        };
        assert_eq!(
            got,
            WriteRequest {
                timeseries: vec![
                    TimeSeries {
                        labels: vec![label("__name__", "smon_cpu_percent"), label("host", "n1")],
                        samples: vec![
                            Sample {
                                value: 12.5,
                                timestamp: 1_700_000_000_123
                            },
                            Sample {
                                value: 0.0,
                                timestamp: 1_700_000_001_123
                            },
                        ],
                    },
                    TimeSeries {
                        labels: vec![label("__name__", "smon_load1")],
                        samples: vec![Sample {
                            value: f64::MAX,
                            timestamp: i64::from(u32::MAX) * 1000
                        }],
                    },
                ]
            }
        );
    }
}
