// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Service errors: one constructor per Azure error code.
//!
//! Every failure the engine reports to a client is a [`ServiceError`]: an HTTP status, the
//! `x-ms-error-code` value and a human-readable message. The doors turn it into an Azure-style
//! response (XML `<Error>` body, `x-ms-error-code` header).

use std::fmt;

/// An Azure Blob error code with its HTTP status and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: a header has an invalid value.
    InvalidHeaderValue,
    /// 400: a query parameter has an invalid value.
    InvalidQueryParameterValue,
    /// 400: a required header is missing.
    MissingRequiredHeader,
    /// 400: a required query parameter is missing.
    MissingRequiredQueryParameter,
    /// 400: the block list names a block that does not exist.
    InvalidBlockList,
    /// 400: the XML body is not well formed.
    InvalidXmlDocument,
    /// 400: the Content-MD5 does not match the body.
    Md5Mismatch,
    /// 400: a value is out of range.
    OutOfRangeInput,
    /// 400: the block or blob content is invalid (e.g. block ids of different lengths).
    InvalidBlobOrBlock,
    /// 400: the request is malformed.
    InvalidInput,
    /// 400: the URI does not name a resource.
    InvalidUri,
    /// 400: container or blob name is invalid.
    InvalidResourceName,
    /// 400: a metadata name is invalid.
    InvalidMetadata,
    /// 400: the body is shorter or longer than announced.
    InvalidContentLength,
    /// 400: metadata names and values exceed 8 KiB.
    MetadataTooLarge,
    /// 403: the signature does not verify.
    AuthenticationFailed,
    /// 404: container does not exist.
    ContainerNotFound,
    /// 404: blob does not exist.
    BlobNotFound,
    /// 405: the verb is not supported on this resource.
    UnsupportedHttpVerb,
    /// 409: the container exists.
    ContainerAlreadyExists,
    /// 409: the container is being deleted.
    ContainerBeingDeleted,
    /// 409: the blob exists.
    BlobAlreadyExists,
    /// 409: a lease is already present.
    LeaseAlreadyPresent,
    /// 409: no lease for a lease operation.
    LeaseNotPresentWithLeaseOperation,
    /// 409: lease id mismatch for a lease operation.
    LeaseIdMismatchWithLeaseOperation,
    /// 409: breaking lease cannot be acquired.
    LeaseIsBreakingAndCannotBeAcquired,
    /// 409: breaking lease cannot be changed.
    LeaseIsBreakingAndCannotBeChanged,
    /// 409: broken lease cannot be renewed.
    LeaseIsBrokenAndCannotBeRenewed,
    /// 409: the operation does not fit the blob type.
    InvalidBlobType,
    /// 409: too many blocks.
    BlockCountExceedsLimit,
    /// 411: Content-Length is required.
    MissingContentLengthHeader,
    /// 412: a condition header failed.
    ConditionNotMet,
    /// 304: a read condition (If-None-Match, If-Modified-Since) failed.
    NotModified,
    /// 400: a query parameter is out of range.
    OutOfRangeQueryParameterValue,
    /// 412: the blob is leased and no lease id was given.
    LeaseIdMissing,
    /// 412: the lease id does not match.
    LeaseIdMismatchWithBlobOperation,
    /// 412: a lease id was given but there is no lease.
    LeaseNotPresentWithBlobOperation,
    /// 412: append position condition failed.
    AppendPositionConditionNotMet,
    /// 412: max size condition failed.
    MaxBlobSizeConditionNotMet,
    /// 413: the body is too large.
    RequestBodyTooLarge,
    /// 416: the range cannot be satisfied.
    InvalidRange,
    /// 416: the page range is invalid.
    InvalidPageRange,
    /// 431: the request head is too large.
    RequestHeaderFieldsTooLarge,
    /// 500: internal error (storage failure).
    InternalError,
    /// 501: not implemented here.
    NotImplemented,
    /// 503: the server is busy (connection limit).
    ServerBusy,
}

impl ErrorCode {
    /// HTTP status of the code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidHeaderValue
            | InvalidQueryParameterValue
            | MissingRequiredHeader
            | MissingRequiredQueryParameter
            | InvalidBlockList
            | InvalidXmlDocument
            | Md5Mismatch
            | OutOfRangeInput
            | InvalidBlobOrBlock
            | InvalidInput
            | InvalidUri
            | InvalidResourceName
            | InvalidMetadata
            | InvalidContentLength
            | MetadataTooLarge
            | OutOfRangeQueryParameterValue => 400,
            NotModified => 304,
            AuthenticationFailed => 403,
            ContainerNotFound | BlobNotFound => 404,
            UnsupportedHttpVerb => 405,
            ContainerAlreadyExists
            | ContainerBeingDeleted
            | BlobAlreadyExists
            | LeaseAlreadyPresent
            | LeaseNotPresentWithLeaseOperation
            | LeaseIdMismatchWithLeaseOperation
            | LeaseIsBreakingAndCannotBeAcquired
            | LeaseIsBreakingAndCannotBeChanged
            | LeaseIsBrokenAndCannotBeRenewed
            | InvalidBlobType
            | BlockCountExceedsLimit => 409,
            MissingContentLengthHeader => 411,
            ConditionNotMet
            | LeaseIdMissing
            | LeaseIdMismatchWithBlobOperation
            | LeaseNotPresentWithBlobOperation
            | AppendPositionConditionNotMet
            | MaxBlobSizeConditionNotMet => 412,
            RequestBodyTooLarge => 413,
            InvalidRange | InvalidPageRange => 416,
            RequestHeaderFieldsTooLarge => 431,
            InternalError => 500,
            NotImplemented => 501,
            ServerBusy => 503,
        }
    }

    /// The `x-ms-error-code` string.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidHeaderValue => "InvalidHeaderValue",
            InvalidQueryParameterValue => "InvalidQueryParameterValue",
            MissingRequiredHeader => "MissingRequiredHeader",
            MissingRequiredQueryParameter => "MissingRequiredQueryParameter",
            InvalidBlockList => "InvalidBlockList",
            InvalidXmlDocument => "InvalidXmlDocument",
            Md5Mismatch => "Md5Mismatch",
            OutOfRangeInput => "OutOfRangeInput",
            InvalidBlobOrBlock => "InvalidBlobOrBlock",
            InvalidInput => "InvalidInput",
            InvalidUri => "InvalidUri",
            InvalidResourceName => "InvalidResourceName",
            InvalidMetadata => "InvalidMetadata",
            InvalidContentLength => "InvalidInput",
            MetadataTooLarge => "MetadataTooLarge",
            AuthenticationFailed => "AuthenticationFailed",
            ContainerNotFound => "ContainerNotFound",
            BlobNotFound => "BlobNotFound",
            UnsupportedHttpVerb => "UnsupportedHttpVerb",
            ContainerAlreadyExists => "ContainerAlreadyExists",
            ContainerBeingDeleted => "ContainerBeingDeleted",
            BlobAlreadyExists => "BlobAlreadyExists",
            LeaseAlreadyPresent => "LeaseAlreadyPresent",
            LeaseNotPresentWithLeaseOperation => "LeaseNotPresentWithLeaseOperation",
            LeaseIdMismatchWithLeaseOperation => "LeaseIdMismatchWithLeaseOperation",
            LeaseIsBreakingAndCannotBeAcquired => "LeaseIsBreakingAndCannotBeAcquired",
            LeaseIsBreakingAndCannotBeChanged => "LeaseIsBreakingAndCannotBeChanged",
            LeaseIsBrokenAndCannotBeRenewed => "LeaseIsBrokenAndCannotBeRenewed",
            InvalidBlobType => "InvalidBlobType",
            BlockCountExceedsLimit => "BlockCountExceedsLimit",
            MissingContentLengthHeader => "MissingContentLengthHeader",
            ConditionNotMet | NotModified => "ConditionNotMet",
            OutOfRangeQueryParameterValue => "OutOfRangeQueryParameterValue",
            LeaseIdMissing => "LeaseIdMissing",
            LeaseIdMismatchWithBlobOperation => "LeaseIdMismatchWithBlobOperation",
            LeaseNotPresentWithBlobOperation => "LeaseNotPresentWithBlobOperation",
            AppendPositionConditionNotMet => "AppendPositionConditionNotMet",
            MaxBlobSizeConditionNotMet => "MaxBlobSizeConditionNotMet",
            RequestBodyTooLarge => "RequestBodyTooLarge",
            InvalidRange => "InvalidRange",
            InvalidPageRange => "InvalidPageRange",
            RequestHeaderFieldsTooLarge => "RequestHeaderFieldsTooLarge",
            InternalError => "InternalError",
            NotImplemented => "NotImplemented",
            ServerBusy => "ServerBusy",
        }
    }

    /// The default message of the code.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidHeaderValue => "The value for one of the HTTP headers is not in the correct format.",
            InvalidQueryParameterValue => {
                "Value for one of the query parameters specified in the request URI is invalid."
            }
            MissingRequiredHeader => "An HTTP header that's mandatory for this request is not specified.",
            MissingRequiredQueryParameter => {
                "A query parameter that's mandatory for this request is not specified."
            }
            InvalidBlockList => "The specified block list is invalid.",
            InvalidXmlDocument => "XML specified is not syntactically valid.",
            Md5Mismatch => "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
            OutOfRangeInput => "One of the request inputs is out of range.",
            InvalidBlobOrBlock => "The specified blob or block content is invalid.",
            InvalidInput => "One of the request inputs is not valid.",
            InvalidUri => "The requested URI does not represent any resource on the server.",
            InvalidResourceName => "The specified resource name contains invalid characters.",
            InvalidMetadata => "The metadata specified is invalid. It has characters that are not permitted.",
            InvalidContentLength => "The request body length does not match the Content-Length header.",
            MetadataTooLarge => "The size of the specified metadata exceeds the maximum size permitted.",
            AuthenticationFailed => "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            ContainerNotFound => "The specified container does not exist.",
            BlobNotFound => "The specified blob does not exist.",
            UnsupportedHttpVerb => "The resource doesn't support the specified HTTP verb.",
            ContainerAlreadyExists => "The specified container already exists.",
            ContainerBeingDeleted => "The specified container is being deleted.",
            BlobAlreadyExists => "The specified blob already exists.",
            LeaseAlreadyPresent => "There is already a lease present.",
            LeaseNotPresentWithLeaseOperation => "There is currently no lease on the blob.",
            LeaseIdMismatchWithLeaseOperation => "The lease ID specified did not match the lease ID for the blob.",
            LeaseIsBreakingAndCannotBeAcquired => "There is already a breaking lease present.",
            LeaseIsBreakingAndCannotBeChanged => "The lease ID matched, but the lease is currently in breaking state and cannot be changed.",
            LeaseIsBrokenAndCannotBeRenewed => "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.",
            InvalidBlobType => "The blob type is invalid for this operation.",
            BlockCountExceedsLimit => "The committed or uncommitted block count exceeds the maximum limit.",
            MissingContentLengthHeader => "The Content-Length header was not specified.",
            ConditionNotMet | NotModified => "The condition specified using HTTP conditional header(s) is not met.",
            OutOfRangeQueryParameterValue => "One of the query parameters specified in the request URI is outside the permissible range.",
            LeaseIdMissing => "There is currently a lease on the blob and no lease ID was specified in the request.",
            LeaseIdMismatchWithBlobOperation => "The lease ID specified did not match the lease ID for the blob.",
            LeaseNotPresentWithBlobOperation => "There is currently no lease on the blob.",
            AppendPositionConditionNotMet => "The append position condition specified was not met.",
            MaxBlobSizeConditionNotMet => "The max blob size condition specified was not met.",
            RequestBodyTooLarge => "The request body is too large and exceeds the maximum permissible limit.",
            InvalidRange => "The range specified is invalid for the current size of the resource.",
            InvalidPageRange => "The page range specified is invalid.",
            RequestHeaderFieldsTooLarge => "The request head is too large.",
            InternalError => "The server encountered an internal error. Please retry the request.",
            NotImplemented => "The requested operation is not implemented by this service.",
            ServerBusy => "The server is currently unable to receive requests. Please retry your request.",
        }
    }
}

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The Azure error code.
    pub code: ErrorCode,
    /// Extra detail appended to the message.
    pub detail: Option<String>,
    /// Extra response headers (e.g. `Content-Range` on 416).
    pub headers: Vec<(String, String)>,
}

impl ServiceError {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            headers: Vec::new(),
        }
    }

    /// An error with a detail line (e.g. which header was bad).
    pub fn with_detail(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: Some(detail.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.status(), self.code.as_str())?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

impl From<crate::storage::StorageError> for ServiceError {
    fn from(e: crate::storage::StorageError) -> Self {
        tracing::error!("storage failure: {e}");
        ServiceError::with_detail(ErrorCode::InternalError, e.to_string())
    }
}

/// Shorthand for engine results.
pub type SResult<T> = Result<T, ServiceError>;
