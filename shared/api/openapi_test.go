package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
)

// The OpenAPI document and the routes are held to each other both ways: every route the
// handler serves is documented, and every documented operation is served.
func TestEveryRouteDocumentedAndEveryDocumentedRouteServed(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			if method != "parameters" && method != "summary" && method != "description" {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	served := map[string]bool{}
	for _, rt := range (&server{}).table() {
		served[rt.method+" "+rt.pattern] = true
	}
	for op := range served {
		if !documented[op] {
			t.Errorf("%s is served but not in openapi.json", op)
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("%s is in openapi.json but not served", op)
		}
	}
	if len(served) < 16 {
		t.Errorf("only %d routes", len(served))
	}
}

// Each operation's security matches its route's scope, and the document is valid OpenAPI 3.1.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	v := openAPIValidator(t)
	if ok, errs := v.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not valid OpenAPI 3.1:\n%s", describe(errs))
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, rt := range (&server{}).table() {
		op := doc.Paths[rt.pattern][strings.ToLower(rt.method)]
		var scopes []string
		for _, req := range op.Security {
			scopes = append(scopes, req["bearer"]...)
		}
		want := []string{}
		if rt.scope != "" {
			want = []string{string(rt.scope)}
		}
		if !slices.Equal(append([]string{}, scopes...), want) {
			t.Errorf("%s %s: documented bearer scopes %v, the route needs %v", rt.method, rt.pattern, scopes, want)
		}
	}
}

var (
	validatorOnce sync.Once
	sharedV       validator.Validator
	validatorErr  error
)

// openAPIValidator parses openapi.json once for all tests.
func openAPIValidator(t testing.TB) validator.Validator {
	t.Helper()
	validatorOnce.Do(func() {
		doc, err := libopenapi.NewDocument(openAPI)
		if err != nil {
			validatorErr = err
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			validatorErr = fmt.Errorf("%v", errs)
			return
		}
		sharedV = v
	})
	if validatorErr != nil {
		t.Fatalf("openapi.json: %v", validatorErr)
	}
	return sharedV
}

// conforms checks a request and its response against the document.
func conforms(t testing.TB, req *http.Request, resp *http.Response) {
	t.Helper()
	v := openAPIValidator(t)
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		if ok, _ := v.ValidateHttpRequest(req); !ok {
			return // no such operation in the document, as the handler said
		}
	}
	if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
		t.Errorf("%s %s -> %d does not conform to openapi.json:\n%s", req.Method, req.URL, resp.StatusCode, describe(errs))
	}
}

var mu sync.Mutex

func describe(errs []*liberrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s: %s\n", e.Message, e.Reason)
		for _, se := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "    at %s (schema %s): %s\n", se.FieldPath, se.KeywordLocation, se.Reason)
		}
	}
	return b.String()
}

// The document check can fail: the same validator refuses the document with an operation
// broken.
func TestOpenAPIValidatorRefusesABrokenDocument(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	op := doc["paths"].(map[string]any)["/graph"].(map[string]any)["get"].(map[string]any)
	delete(op, "responses")
	op["parameters"] = "not a list"
	broken, _ := json.Marshal(doc)
	d, err := libopenapi.NewDocument(broken)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := validator.NewValidator(d)
	if ok, _ := v.ValidateDocument(); ok {
		t.Fatal("a document without responses and with parameters not a list validates")
	}
}
