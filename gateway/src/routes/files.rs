//! `/api/files` and `/api/usage`.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tessera_proto::pb;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Credentials, CurrentUser};
use crate::error::{ApiError, ErrorBody};
use crate::ops::json::{self, File, FileList, FileWithChunks, MultipartResult, Usage};
use crate::ops::range::{parse_range, RangeRequest};
use crate::ops::{download, upload};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadParams {
    /// The file's name (for a raw body): at most 255 bytes, no '/', '\\',
    /// '..' or control characters.
    // The pattern says the same without look-ahead, which not every OpenAPI
    // tool supports: no two dots in a row, and not "." alone.
    #[param(min_length = 1, max_length = 255, pattern = r"^\.?(?:[^./\\\x00-\x1f\x7f-\x9f]\.?)+$")]
    name: Option<String>,
}

/// A multipart upload: one or more `file` parts, each with a filename.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MultipartUpload {
    #[schema(format = Binary)]
    file: String,
}

/// A raw upload answers the file; a multipart upload `{"files": [...]}`.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Created {
    One(File),
    Many(MultipartResult),
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Upload: a raw body with `?name=` (201 with the file), or
/// `multipart/form-data` with `file` parts (201 with `{"files": [...]}`).
#[utoipa::path(post, path = "/api/files", tag = "files", params(UploadParams),
    request_body(content(
        (String = "application/octet-stream"),
        (MultipartUpload = "multipart/form-data"))),
    responses(
        (status = 201, body = Created, description = "the file (raw body) or the files (multipart)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 408, body = ErrorBody, description = "the body stopped arriving for the gateway's idle timeout"),
        (status = 413, body = ErrorBody, description = "over the size limit or the user's quota"),
        (status = 503, body = ErrorBody, description = "too few healthy data nodes or no controller leader")))]
pub async fn create(
    State(app): State<AppState>,
    caller: Credentials,
    params: Result<Query<UploadParams>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    match create_files(&app, &caller, params, request).await {
        Ok(response) => Ok(response),
        Err(e) => Err(caller.vouch_for(&app, e).await),
    }
}

async fn create_files(
    app: &AppState,
    caller: &Credentials,
    params: Result<Query<UploadParams>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if is_multipart {
        let multipart = Multipart::from_request(request, app).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let files = create_multipart(app, caller, multipart).await?;
        return Ok((StatusCode::CREATED, Json(MultipartResult { files })).into_response());
    }
    let name = params
        .name
        .ok_or_else(|| ApiError::BadRequest("missing ?name= (or send multipart/form-data with file parts)".into()))?;
    let size_hint = body_size(request.body());
    let body = request.into_body().into_data_stream();
    let file = upload::upload(app, caller, &name, size_hint, body).await?;
    Ok((StatusCode::CREATED, Json(json::file(&file))).into_response())
}

/// The body's exact size when the request framing tells it: its
/// Content-Length, or 0 for an HTTP/1.1 request with neither
/// Content-Length nor Transfer-Encoding (which has no body); `None` for a
/// chunked or otherwise streamed body.
fn body_size(body: &axum::body::Body) -> Option<u64> {
    axum::body::HttpBody::size_hint(body).exact()
}

/// Uploads every `file` part; all or nothing: if one fails, the files
/// already committed by this request are deleted again.
async fn create_multipart(
    app: &AppState,
    caller: &Credentials,
    mut multipart: Multipart,
) -> Result<Vec<File>, ApiError> {
    let mut committed: Vec<pb::FileMetadata> = Vec::new();
    let result = async {
        while let Some(field) =
            multipart.next_field().await.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?
        {
            if field.name() != Some("file") {
                continue;
            }
            let name = field
                .file_name()
                .map(str::to_string)
                .ok_or_else(|| ApiError::BadRequest("a file part has no filename".into()))?;
            let body = field.map_err(|e| format!("malformed multipart body: {e}"));
            let file = upload::upload(app, caller, &name, None, body).await?;
            committed.push(file);
        }
        if committed.is_empty() {
            return Err(ApiError::BadRequest("the multipart body has no part named \"file\"".into()));
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(committed.iter().map(json::file).collect()),
        Err(e) => {
            for file in &committed {
                if let Err(cleanup) = delete_file(app, &file.owner, &file.file_id).await {
                    tracing::warn!(file = %file.file_id, error = %cleanup, "could not roll back a multipart upload");
                }
            }
            Err(e)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Case-insensitive part of the name.
    q: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The signed-in user's files, newest first.
#[utoipa::path(get, path = "/api/files", tag = "files", params(ListParams),
    responses((status = 200, body = FileList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    user: CurrentUser,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FileList>, ApiError> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    let request = pb::ListFilesRequest {
        query: params.q.unwrap_or_default(),
        limit,
        cursor: params.cursor.unwrap_or_default(),
        owner: user.username,
    };
    let reply = app.control.call_with(request, |mut c, r| async move { c.list_files(r).await }).await?;
    Ok(Json(FileList {
        files: reply.files.iter().map(json::file).collect(),
        next_cursor: (!reply.next_cursor.is_empty()).then_some(reply.next_cursor),
    }))
}

/// A file with its chunks and the nodes holding each.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files", params(("id" = String, Path, description = "file id (a UUID)")),
    responses((status = 200, body = FileWithChunks), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such file, or another user's")))]
pub async fn metadata(
    State(app): State<AppState>,
    caller: Credentials,
    Path(id): Path<String>,
) -> Result<Json<FileWithChunks>, ApiError> {
    let file = download::metadata(&app, &caller, &id).await?;
    Ok(Json(json::file_with_chunks(&file)))
}

async fn delete_file(app: &AppState, owner: &str, id: &str) -> Result<(), ApiError> {
    tessera_proto::ids::parse_file_id(id)
        .map_err(|_| ApiError::NotFound(format!("no such file: {}", id.chars().take(80).collect::<String>())))?;
    let request = pb::DeleteFileRequest { file_id: id.to_string(), owner: owner.to_string() };
    app.control.call_with(request, |mut c, r| async move { c.delete_file(r).await }).await?;
    Ok(())
}

/// Delete a file: gone from the list at once, its chunks removed lazily.
#[utoipa::path(delete, path = "/api/files/{id}", tag = "files", params(("id" = String, Path, description = "file id (a UUID)")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_file(&app, &user.username, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `Content-Disposition` with an ASCII fallback and the exact UTF-8 name (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The bytes, whole or one `Range` (206); an unsatisfiable range is 416.
#[utoipa::path(get, path = "/api/files/{id}/content", tag = "files",
    params(("id" = String, Path, description = "file id (a UUID)"), ("Range" = Option<String>, Header, description = "bytes=start-end")),
    responses((status = 200, description = "the bytes, with Content-Type guessed from the name"),
        (status = 206, description = "the requested range"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "no replica of a chunk can be read now")))]
pub async fn content(
    State(app): State<AppState>,
    caller: Credentials,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = download::metadata(&app, &caller, &id).await?;
    let size = file.size;
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let (status, start, end) = match range {
        RangeRequest::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
        RangeRequest::Full => (StatusCode::OK, 0, size.saturating_sub(1)),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let mime = mime_guess::from_path(&file.name).first_or_octet_stream();
    let disposition = content_disposition(&file.name);
    let etag = format!("\"{}\"", file.checksum);
    // Fetch the first chunk before answering: if no replica can serve it the
    // client gets a 503, not a 200 that breaks off.
    let mut stream = Box::pin(download::stream_range(app, file, start, end));
    let first = match stream.next().await {
        Some(Ok(bytes)) => Some(Ok(bytes)),
        Some(Err(e)) => return Err(ApiError::Unavailable(format!("the file cannot be read now: {e}"))),
        None => None,
    };
    let body = Body::from_stream(futures::stream::iter(first).chain(stream));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime.as_ref())
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response = response.header(header::CONTENT_DISPOSITION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response = response.header(header::ETAG, value);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    response.body(body).map_err(|e| ApiError::Internal(format!("building the response: {e}")))
}

/// What the signed-in user stores, their quota, and the cluster's room.
#[utoipa::path(get, path = "/api/usage", tag = "files",
    responses((status = 200, body = Usage), (status = 401, body = ErrorBody)))]
pub async fn usage(State(app): State<AppState>, user: CurrentUser) -> Result<Json<Usage>, ApiError> {
    let summary = crate::routes::admin::summary_of(&app);
    let request = pb::ListFilesRequest { limit: 1, owner: user.username.clone(), ..Default::default() };
    let mine = app.control.call_with(request, |mut c, r| async move { c.list_files(r).await });
    let (summary, mine) = tokio::try_join!(summary, async { mine.await.map_err(ApiError::from) })?;
    Ok(Json(Usage {
        files: mine.total_files,
        bytes: mine.total_bytes,
        stored_bytes: mine.stored_bytes,
        quota_bytes: user.quota_bytes,
        capacity_bytes: summary.capacity_bytes,
        free_bytes: summary.free_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_ascii_fallback_and_utf8_name() {
        assert_eq!(content_disposition("a b.txt"), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        let d = content_disposition("résumé \"1\".pdf");
        assert!(d.contains("filename=\"r_sum_ _1_.pdf\""), "{d}");
        assert!(d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf"), "{d}");
    }
}
