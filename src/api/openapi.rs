//! The OpenAPI description, generated from the handlers' `#[utoipa::path]` attributes and the
//! wire types' schemas, so it cannot drift from the code.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hikitsugi",
        description = "Answers questions over an organisation's know-how documents, with cited passages, \
                       showing each caller only the documents its organisation may read."
    ),
    paths(
        handlers::search,
        handlers::ask,
        handlers::list_documents,
        handlers::passages,
        handlers::give_feedback,
        handlers::list_feedback,
        super::audit::list,
        super::workbench::compare,
        super::workbench::similar,
        super::workbench::facets,
        super::workbench::export,
        handlers::upload_document,
        handlers::delete_document,
        handlers::healthz,
        handlers::readyz,
        handlers::metrics,
        handlers::openapi_json,
        super::web::sign_in,
        super::web::sign_in_with_assertion,
        super::web::current,
        super::web::sign_out,
    ),
    components(schemas(super::wire::StreamPassages, super::wire::StreamSentence)),
    modifiers(&Security),
    tags(
        (name = "search", description = "Passages and cited answers"),
        (name = "documents", description = "Listing, uploading and deleting documents"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
        (name = "workbench", description = "Coordinators: answers per group, similar cases, facets, export"),
        (name = "feedback", description = "👍/👎 on answers, for each organisation's admins"),
        (name = "audit", description = "Who asked what and which documents answered, for each organisation's admins"),
        (name = "web", description = "Sessions of the web app (cookies; not for programs)"),
    )
)]
struct ApiDoc;

/// The two ways to present an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Authorization: Bearer <API key>"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The OpenAPI document of the HTTP API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
