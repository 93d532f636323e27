package api

import (
	_ "embed"
	"net/http"
)

// The OpenAPI 3.1 document of this API, served at GET /openapi.json. openapi_test.go holds it
// to the routes both ways (every route documented, every documented operation served) and
// validates it, and every response of the handler tests against it.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ Caller) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPI)
	return err
}
