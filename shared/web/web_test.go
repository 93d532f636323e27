package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The committed bundle is built from the committed sources: build.json records the SHA-256 of
// web/'s sources (as web/build.mjs computes it), so editing them without `make web` fails here.
func TestBundleIsBuiltFromTheSources(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "web")
	files := []string{"build.mjs", "package.json", "package-lock.json"}
	src, err := os.ReadDir(filepath.Join(root, "src"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range src {
		files = append(files, "src/"+e.Name())
	}
	slices.Sort(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		h.Write([]byte(f + " " + hex.EncodeToString(sum[:]) + "\n"))
	}
	var build struct {
		Sources string `json:"sources_sha256"`
		Bundled []struct{ Name, Version, License string }
	}
	b, err := dist.ReadFile("dist/build.json")
	if err != nil || json.Unmarshal(b, &build) != nil {
		t.Fatalf("dist/build.json: %v", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != build.Sources {
		t.Errorf("web/'s sources (sha256 %s) are not those dist/ was built from (%s): run make web", got, build.Sources)
	}
	third, _ := dist.ReadFile("dist/THIRD_PARTY.txt")
	for _, p := range build.Bundled {
		if p.License == "" || !strings.Contains(string(third), p.Name+" "+p.Version+" ("+p.License+")") {
			t.Errorf("%s %s: its licence is not in THIRD_PARTY.txt", p.Name, p.Version)
		}
	}
	if len(build.Bundled) == 0 {
		t.Error("build.json lists no bundled package")
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, ctype string
		status      int
	}{
		{"/", "text/html; charset=utf-8", 200},
		{"/ui/app.js", "text/javascript; charset=utf-8", 200},
		{"/ui/app.css", "text/css; charset=utf-8", 200},
		{"/ui/THIRD_PARTY.txt", "text/plain; charset=utf-8", 200},
		{"/ui/nope.js", "application/problem+json", 404},
		{"/ui/../web.go", "", 404},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype) {
			t.Errorf("GET %s: %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if tc.status == 200 && resp.Header.Get("Content-Security-Policy") != CSP {
			t.Errorf("GET %s: no CSP", tc.path)
		}
		if tc.status == 200 {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			again, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			again.Body.Close()
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("GET %s with its ETag: %d, want 304", tc.path, again.StatusCode)
			}
		}
	}
}
