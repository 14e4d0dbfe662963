//! `/api/files` and `/api/usage`.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_proto::pb;

use crate::error::ApiError;
use crate::ops::range::{parse_range, RangeRequest};
use crate::ops::{download, json, upload};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct UploadParams {
    name: Option<String>,
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// `POST /api/files`: a raw body with `?name=`, or multipart `file` parts.
pub async fn create(
    State(app): State<AppState>,
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
        let multipart =
            Multipart::from_request(request, &app).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let files = create_multipart(&app, multipart).await?;
        return Ok((StatusCode::CREATED, Json(json!({ "files": files }))).into_response());
    }
    let name = params
        .name
        .ok_or_else(|| ApiError::BadRequest("missing ?name= (or send multipart/form-data with file parts)".into()))?;
    let size_hint = content_length(request.headers());
    let body = request.into_body().into_data_stream();
    let file = upload::upload(&app, &name, size_hint, body).await?;
    Ok((StatusCode::CREATED, Json(json::file(&file))).into_response())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Uploads every `file` part; all or nothing: if one fails, the files
/// already committed by this request are deleted again.
async fn create_multipart(app: &AppState, mut multipart: Multipart) -> Result<Vec<Value>, ApiError> {
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
            let file = upload::upload(app, &name, None, body).await?;
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
                if let Err(cleanup) = delete_file(app, &file.file_id).await {
                    tracing::warn!(file = %file.file_id, error = %cleanup, "could not roll back a multipart upload");
                }
            }
            Err(e)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/files`: newest first.
pub async fn list(
    State(app): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    let request =
        pb::ListFilesRequest { query: params.q.unwrap_or_default(), limit, cursor: params.cursor.unwrap_or_default() };
    let reply = app
        .control
        .call(|mut c| {
            let request = request.clone();
            async move { c.list_files(request).await }
        })
        .await?;
    let next = if reply.next_cursor.is_empty() { Value::Null } else { json!(reply.next_cursor) };
    Ok(Json(json!({
        "files": reply.files.iter().map(json::file).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /api/files/{id}`: the file with its chunks and replica nodes.
pub async fn metadata(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let file = download::metadata(&app, &id).await?;
    Ok(Json(json::file_with_chunks(&file)))
}

async fn delete_file(app: &AppState, id: &str) -> Result<(), ApiError> {
    tessera_proto::ids::parse_file_id(id).map_err(|_| ApiError::NotFound(format!("no such file: {id}")))?;
    let request = pb::DeleteFileRequest { file_id: id.to_string() };
    app.control
        .call(|mut c| {
            let request = request.clone();
            async move { c.delete_file(request).await }
        })
        .await?;
    Ok(())
}

/// `DELETE /api/files/{id}`.
pub async fn delete(State(app): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete_file(&app, &id).await?;
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

/// `GET /api/files/{id}/content`: the bytes, whole or one range.
pub async fn content(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = download::metadata(&app, &id).await?;
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

/// `GET /api/usage`.
pub async fn usage(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = crate::routes::admin::summary_of(&app).await?;
    Ok(Json(json!({
        "files": s.files,
        "bytes": s.file_bytes,
        "stored_bytes": s.stored_bytes,
        "capacity_bytes": s.capacity_bytes,
        "free_bytes": s.free_bytes,
    })))
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
