//! Certificates Ironbridge generates for machine-to-machine auth (NetSuite option A): the
//! key pair is made here, the private key is kept encrypted, the public certificate is offered
//! for download so the customer can upload it to their system.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironbridge_connectors::netsuite::certs::generate_certificate;
use ironbridge_core::ids::new_id;
use ironbridge_core::service::certificate_context;
use ironbridge_core::store::{Certificate, StoreError};
use ironbridge_model::ErrorCode;
use ironbridge_model::api::{CertificateIn, CertificateOut, FieldFormat, SystemId};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

type ErrorBody = ironbridge_model::error::ErrorResponse;

fn out(c: Certificate) -> ApiResult<CertificateOut> {
    Ok(CertificateOut {
        system: SystemId::parse(&c.system).ok_or_else(|| ApiError::internal("unknown system"))?,
        id: c.id,
        certificate_pem: c.certificate_pem,
        not_before: c.not_before,
        not_after: c.not_after,
        created_at: c.created_at,
    })
}

/// Whether `system` authenticates with a certificate Ironbridge generates.
pub fn uses_certificates(system: &ironbridge_core::system::SystemDescriptor) -> bool {
    system
        .auth
        .iter()
        .flat_map(|a| a.fields)
        .any(|f| f.format == FieldFormat::CertificateId)
}

/// Generate a key pair and a self-signed certificate (RSA-3072, SHA-256, valid for two years).
/// Upload the certificate to the system, then create the connection with
/// `credentials.ironbridge_certificate` set to this id; the private key never leaves Ironbridge.
#[utoipa::path(post, path = "/v1/certificates", tag = "Certificates", operation_id = "v1.certificates.create",
    request_body = CertificateIn,
    responses((status = 201, description = "The certificate", body = CertificateOut),
        (status = 422, description = "The system does not use certificates, or a bad common name", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_certificate(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<CertificateIn>,
) -> ApiResult<(StatusCode, Json<CertificateOut>)> {
    if !state
        .runtimes
        .registry()
        .get(input.system.as_str())
        .is_some_and(uses_certificates)
    {
        let users: Vec<String> = state
            .runtimes
            .registry()
            .systems()
            .iter()
            .filter(|s| uses_certificates(s))
            .map(|s| format!("`{}`", s.id))
            .collect();
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            format!(
                "Only {} connections use a certificate Ironbridge generates.",
                users.join(", ")
            ),
        )
        .param("system"));
    }
    let name = input.common_name.unwrap_or_else(|| "Ironbridge".into());
    let cert = generate(&state, &org, input.system.as_str(), name).await?;
    Ok((StatusCode::CREATED, Json(out(cert)?)))
}

/// Generates a key pair and certificate for `system` in the organization and stores it, the
/// private key encrypted (also what Link does for NetSuite's option A).
pub(crate) async fn generate(
    state: &AppState,
    org: &ironbridge_core::store::OrgId,
    system: &str,
    common_name: String,
) -> ApiResult<Certificate> {
    let now = state.clock.now();
    // RSA key generation takes a while: keep it off the request threads.
    let generated = tokio::task::spawn_blocking(move || generate_certificate(&common_name, now))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            ironbridge_core::connector::ConnectorError::InvalidSettings { message, .. } => {
                ApiError::new(ErrorCode::ValidationError, message).param("common_name")
            }
            other => ApiError::internal(other),
        })?;
    let id = new_id("crt", now.micros());
    let private_key = state
        .keys
        .encrypt(
            &certificate_context(&id),
            generated.private_key_pem.as_bytes(),
        )
        .map_err(ApiError::internal)?;
    let cert = Certificate {
        id,
        org_id: org.0.clone(),
        system: system.into(),
        private_key,
        certificate_pem: generated.certificate_pem,
        not_before: generated.not_before,
        not_after: generated.not_after,
        created_at: now,
    };
    state.store.create_certificate(&cert).await?;
    Ok(cert)
}

pub(crate) async fn owned(
    state: &AppState,
    org: &ironbridge_core::store::OrgId,
    id: &str,
) -> ApiResult<Certificate> {
    state
        .store
        .get_certificate(org, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("certificate"),
            other => other.into(),
        })
}

/// Get a generated certificate (never its private key).
#[utoipa::path(get, path = "/v1/certificates/{id}", tag = "Certificates", operation_id = "v1.certificates.get",
    params(("id" = String, Path, description = "Certificate id (`crt_…`)")),
    responses((status = 200, description = "The certificate", body = CertificateOut),
        (status = 404, description = "No such certificate", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn get_certificate(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CertificateOut>> {
    Ok(Json(out(owned(&state, &org, &id).await?)?))
}

/// Download the public certificate as a PEM file, ready to upload.
#[utoipa::path(get, path = "/v1/certificates/{id}/certificate.pem", tag = "Certificates", operation_id = "v1.certificates.download",
    params(("id" = String, Path, description = "Certificate id (`crt_…`)")),
    responses((status = 200, description = "The PEM file", content_type = "application/x-pem-file", body = String),
        (status = 404, description = "No such certificate", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn download_certificate(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let cert = owned(&state, &org, &id).await?;
    let disposition = format!("attachment; filename=\"{}.pem\"", cert.id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        cert.certificate_pem,
    )
        .into_response())
}
