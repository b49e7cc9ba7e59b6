// Starts Swagger UI on the served OpenAPI document. A separate file (not an inline script), so the
// page's Content-Security-Policy needs no nonce or hash: `script-src 'self'`.
"use strict";
window.ui = window.SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // Nothing leaves the origin: no call to the public validator at validator.swagger.io.
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
