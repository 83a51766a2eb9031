//! The customer's bucket through the S3 SDK: the [`ObjectStore`] port. What emulators answer
//! oddly (a 200 the SDK cannot parse) is settled here, so callers see S3's meaning only.

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    MetadataDirective, ObjectCannedAcl, ObjectOwnership, Payer, ServerSideEncryption,
};
use aws_smithy_types::base64;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use std::collections::HashMap;

use bytes::Bytes;

use crate::domain::connector::{Encryption, SseMode};
use crate::domain::setup::checks::BucketSettings;
use crate::error::{AwsCallError, unparsed_ok_body};
use crate::ports::{
    Body, Crc32c, CustomerStorage, HeadBucketError, ListedObject, Listing, ObjectInfo, ObjectStore,
    PendingUpload, UploadedPart, WriteOptions,
};

/// Opens customers' buckets; built once per cold start from the function's SDK configuration.
#[derive(Clone)]
pub struct S3Storage {
    sdk: SdkConfig,
}

impl S3Storage {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self { sdk: sdk.clone() }
    }
}

impl CustomerStorage for S3Storage {
    type Store = S3Bucket;

    fn open(&self, credentials: SharedCredentialsProvider, bucket: &str, region: &str) -> S3Bucket {
        S3Bucket {
            client: crate::aws::connector_s3_client(&self.sdk, credentials, region),
            bucket: bucket.to_owned(),
        }
    }
}

/// One bucket, one connector's credentials.
#[derive(Clone)]
pub struct S3Bucket {
    client: Client,
    bucket: String,
}

fn call_error<E, R>(
    operation: &'static str,
) -> impl FnOnce(aws_smithy_runtime_api::client::result::SdkError<E, R>) -> AwsCallError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: crate::error::HttpStatus + std::fmt::Debug + 'static,
{
    move |e| AwsCallError::from_sdk("s3", operation, &e)
}

fn sse(options: &WriteOptions) -> (Option<ServerSideEncryption>, Option<String>) {
    match &options.encryption {
        None => (None, None),
        Some(e) => match e.sse {
            SseMode::Aes256 => (Some(ServerSideEncryption::Aes256), None),
            SseMode::AwsKms => (Some(ServerSideEncryption::AwsKms), e.kms_key_id.clone()),
        },
    }
}

/// `x-amz-checksum-crc32c`: the base64 of the checksum's big-endian bytes.
fn crc32c_header(crc32c: Crc32c) -> String {
    base64::encode(crc32c.to_be_bytes())
}

/// A part's CRC32C as ListParts reports it; `None` when absent or not a CRC32C.
fn parse_crc32c(header: Option<&str>) -> Option<Crc32c> {
    let bytes: [u8; 4] = base64::decode(header?).ok()?.try_into().ok()?;
    Some(Crc32c(u32::from_be_bytes(bytes)))
}

fn metadata(options: &WriteOptions) -> Option<HashMap<String, String>> {
    (!options.metadata.is_empty()).then(|| {
        options
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// ETags travel quoted in `If-Match` headers.
fn quoted(e_tag: &str) -> String {
    format!("\"{}\"", e_tag.trim_matches('"'))
}

fn acl(options: &WriteOptions) -> Option<ObjectCannedAcl> {
    options
        .bucket_owner_full_control
        .then_some(ObjectCannedAcl::BucketOwnerFullControl)
}

impl ObjectStore for S3Bucket {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn head_bucket(&self) -> Result<Option<String>, HeadBucketError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(out) => Ok(out.bucket_region().map(str::to_owned)),
            Err(err) => {
                let region = err
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .map(str::to_owned);
                Err(HeadBucketError {
                    error: AwsCallError::from_sdk("s3", "HeadBucket", &err),
                    region,
                })
            }
        }
    }

    async fn bucket_location(&self) -> Result<String, AwsCallError> {
        let out = self
            .client
            .get_bucket_location()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(call_error("GetBucketLocation"))?;
        Ok(match out.location_constraint().map(|l| l.as_str()) {
            None | Some("") => "us-east-1",
            Some("EU") => "eu-west-1",
            Some(other) => other,
        }
        .to_owned())
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, AwsCallError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(call_error("HeadObject"))?;
        let encryption = match out.server_side_encryption() {
            Some(ServerSideEncryption::Aes256) => Some(Encryption {
                sse: SseMode::Aes256,
                kms_key_id: None,
            }),
            Some(ServerSideEncryption::AwsKms) => Some(Encryption {
                sse: SseMode::AwsKms,
                kms_key_id: out.ssekms_key_id().map(str::to_owned),
            }),
            _ => None,
        };
        Ok(ObjectInfo {
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            e_tag: out.e_tag().map(str::to_owned),
            version_id: out.version_id().map(str::to_owned),
            content_type: out.content_type().map(str::to_owned),
            encryption,
            metadata: out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        })
    }

    async fn list(
        &self,
        prefix: &str,
        max_keys: i32,
        continuation: Option<&str>,
    ) -> Result<Listing, AwsCallError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(max_keys)
            .set_continuation_token(continuation.map(str::to_owned))
            .send()
            .await
            .map_err(call_error("ListObjectsV2"))?;
        Ok(Listing {
            objects: out
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(ListedObject {
                        key: o.key()?.to_owned(),
                        size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                        e_tag: o.e_tag().map(str::to_owned),
                    })
                })
                .collect(),
            continuation: out
                .is_truncated()
                .unwrap_or(false)
                .then(|| out.next_continuation_token().map(str::to_owned))
                .flatten(),
        })
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, AwsCallError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|(first, last)| format!("bytes={first}-{last}")))
            .send()
            .await
            .map_err(call_error("GetObject"))?;
        let body = out.body.collect().await.map_err(|e| AwsCallError {
            service: "s3",
            operation: "GetObject",
            code: None,
            message: format!("the body broke off: {e}"),
            http_status: None,
            retryable: true,
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn get_range_if(
        &self,
        key: &str,
        first: u64,
        last: u64,
        e_tag: &str,
    ) -> Result<Bytes, AwsCallError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={first}-{last}"))
            .if_match(quoted(e_tag))
            .send()
            .await
            .map_err(call_error("GetObject"))?;
        let body = out.body.collect().await.map_err(|e| AwsCallError {
            service: "s3",
            operation: "GetObject",
            code: None,
            message: format!("the body broke off: {e}"),
            http_status: None,
            retryable: true,
        })?;
        Ok(body.into_bytes())
    }

    async fn put(
        &self,
        key: &str,
        body: Body,
        options: &WriteOptions,
    ) -> Result<String, AwsCallError> {
        let (sse, kms_key) = sse(options);
        // With the checksum given, the SDK sends it instead of computing one of its own.
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .checksum_crc32_c(crc32c_header(body.crc32c))
            .body(ByteStream::from(body.bytes))
            .set_acl(acl(options))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_content_type(options.content_type.clone())
            .set_metadata(metadata(options))
            .send()
            .await
            .map_err(call_error("PutObject"))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn create_upload(
        &self,
        key: &str,
        options: &WriteOptions,
    ) -> Result<String, AwsCallError> {
        let (sse, kms_key) = sse(options);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .set_acl(acl(options))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_content_type(options.content_type.clone())
            .set_metadata(metadata(options))
            .send()
            .await
            .map_err(call_error("CreateMultipartUpload"))?;
        Ok(out.upload_id.unwrap_or_default())
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Body,
    ) -> Result<UploadedPart, AwsCallError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .checksum_crc32_c(crc32c_header(body.crc32c))
            .body(ByteStream::from(body.bytes))
            .send()
            .await
            .map_err(call_error("UploadPart"))?;
        Ok(UploadedPart {
            part_number,
            e_tag: out.e_tag.unwrap_or_default(),
            // S3 accepted the part, so it matched the checksum we sent.
            crc32c: Some(body.crc32c),
        })
    }

    async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source_key: &str,
        source_e_tag: &str,
        (first, last): (u64, u64),
    ) -> Result<UploadedPart, AwsCallError> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .copy_source(copy_source(&self.bucket, source_key))
            .copy_source_if_match(quoted(source_e_tag))
            .copy_source_range(format!("bytes={first}-{last}"))
            .send()
            .await
            .map_err(call_error("UploadPartCopy"))?;
        let result = out.copy_part_result();
        Ok(UploadedPart {
            part_number,
            e_tag: result
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_owned(),
            crc32c: parse_crc32c(result.and_then(|r| r.checksum_crc32_c())),
        })
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<UploadedPart>, AwsCallError> {
        let listed = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match listed {
            Ok(out) => Ok(out
                .parts()
                .iter()
                .map(|p| UploadedPart {
                    part_number: p.part_number().unwrap_or_default(),
                    e_tag: p.e_tag().unwrap_or_default().to_owned(),
                    crc32c: parse_crc32c(p.checksum_crc32_c()),
                })
                .collect()),
            // A 200 the SDK cannot parse (seen with emulators) still answers the call; the
            // parts are then unknown.
            Err(e) if unparsed_ok_body(&e).is_some() => Ok(Vec::new()),
            Err(e) => Err(AwsCallError::from_sdk("s3", "ListParts", &e)),
        }
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), AwsCallError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.part_number)
                            .e_tag(&p.e_tag)
                            .set_checksum_crc32_c(p.crc32c.map(crc32c_header))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map(|_| ())
            .map_err(call_error("CompleteMultipartUpload"))
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), AwsCallError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(call_error("AbortMultipartUpload"))
    }

    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, AwsCallError> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(call_error("ListMultipartUploads"))?;
        Ok(out
            .uploads()
            .iter()
            .filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_owned(),
                    upload_id: u.upload_id()?.to_owned(),
                })
            })
            .collect())
    }

    async fn copy(
        &self,
        source_key: &str,
        target_key: &str,
        options: &WriteOptions,
    ) -> Result<(), AwsCallError> {
        let (sse, kms_key) = sse(options);
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(target_key)
            .copy_source(copy_source(&self.bucket, source_key))
            .metadata_directive(MetadataDirective::Copy)
            .set_acl(acl(options))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
            .map(|_| ())
            .map_err(call_error("CopyObject"))
    }

    async fn delete(&self, key: &str) -> Result<(), AwsCallError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(call_error("DeleteObject"))
    }

    async fn settings(&self) -> BucketSettings {
        let bucket = &self.bucket;
        let (versioning, lock, payment, ownership) = tokio::join!(
            self.client.get_bucket_versioning().bucket(bucket).send(),
            self.client
                .get_object_lock_configuration()
                .bucket(bucket)
                .send(),
            self.client
                .get_bucket_request_payment()
                .bucket(bucket)
                .send(),
            self.client
                .get_bucket_ownership_controls()
                .bucket(bucket)
                .send(),
        );
        // S3 answers "never configured" with an error code, which means "off".
        let not_configured = |code: Option<&str>| {
            matches!(
                code,
                Some("ObjectLockConfigurationNotFoundError" | "OwnershipControlsNotFoundError")
            )
        };
        BucketSettings {
            versioning: match versioning {
                Ok(v) => Some(matches!(
                    v.status(),
                    Some(BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended)
                )),
                Err(e) => unparsed_ok_body(&e).map(|body| body.contains("<Status>")),
            },
            object_lock: match lock {
                Ok(l) => Some(
                    l.object_lock_configuration()
                        .is_some_and(|c| c.object_lock_enabled().is_some()),
                ),
                Err(e)
                    if not_configured(
                        AwsCallError::from_sdk("s3", "GetObjectLockConfiguration", &e)
                            .code
                            .as_deref(),
                    ) =>
                {
                    Some(false)
                }
                Err(_) => None,
            },
            requester_pays: match payment {
                Ok(p) => Some(p.payer() == Some(&Payer::Requester)),
                Err(e) => {
                    unparsed_ok_body(&e).map(|body| body.contains("<Payer>Requester</Payer>"))
                }
            },
            owner_enforced: match ownership {
                Ok(o) => Some(o.ownership_controls().is_some_and(|c| {
                    c.rules()
                        .iter()
                        .any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
                })),
                Err(e)
                    if not_configured(
                        AwsCallError::from_sdk("s3", "GetBucketOwnershipControls", &e)
                            .code
                            .as_deref(),
                    ) =>
                {
                    Some(false)
                }
                Err(_) => None,
            },
        }
    }
}

/// What `CopySource` leaves unescaped in a key: RFC 3986's unreserved characters and `/`.
const COPY_SOURCE_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `CopySource` is `bucket/key` with the key URL-encoded (spaces, `+`, `%`, Unicode).
fn copy_source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", utf8_percent_encode(key, COPY_SOURCE_KEEP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_travels_as_the_base64_of_its_big_endian_bytes() {
        let check_value = Crc32c::of(b"123456789");
        assert_eq!(crc32c_header(check_value), "4waSgw==");
        assert_eq!(parse_crc32c(Some("4waSgw==")), Some(check_value));
        // Absent, not base64, or another algorithm's width: unknown.
        for header in [None, Some(""), Some("not base64!"), Some("AAAAAAAAAAA=")] {
            assert_eq!(parse_crc32c(header), None, "{header:?}");
        }
    }

    #[test]
    fn copy_source_encodes_keys_users_write() {
        let cases = [
            ("a/b.csv", "bkt/a/b.csv"),
            ("a b+c.csv", "bkt/a%20b%2Bc.csv"),
            ("données/日.csv", "bkt/donn%C3%A9es/%E6%97%A5.csv"),
            ("x%2By", "bkt/x%252By"),
        ];
        for (key, expected) in cases {
            assert_eq!(copy_source("bkt", key), expected, "{key}");
        }
    }
}
