// Starts Swagger UI on the page's #swagger-ui element with the OpenAPI document it names.
// A file of its own (not an inline script) so the page runs under a CSP without 'unsafe-inline'.
"use strict";
(() => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default validator badge is an image from an outside service: none, offline.
    validatorUrl: null,
  });
})();
