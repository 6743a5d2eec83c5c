// Where the API is. "" means the origin that served this page (the gateway itself, as in `make run`).
// A page served elsewhere (the compose web service) gets this file rewritten with the gateway's address,
// e.g. window.LLMSTREAM_API_BASE = "http://localhost:8007"; that gateway must list the page's origin in CORS_ORIGINS.
window.LLMSTREAM_API_BASE = "";
