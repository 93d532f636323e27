package gittest

import (
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// HTTPServer serves every bare repository under root with git's smart HTTP protocol
// (`git http-backend` behind net/http/cgi). Requests must carry basic auth whose password is
// token (any user), as GitHub, GitLab and Gitea accept access tokens; others get 401.
type HTTPServer struct {
	URL      string // e.g. http://127.0.0.1:port
	Requests atomic.Int64
	srv      *httptest.Server
}

// NewHTTPServer starts the server; it stops when the test ends.
func NewHTTPServer(t testing.TB, root, token string) *HTTPServer {
	t.Helper()
	Need(t)
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not on the PATH")
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=karma-test", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}
	s := &HTTPServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		if _, pass, ok := r.BasicAuth(); !ok || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	return s
}

// RepoURL is the URL of the bare repository at path bare (which must lie under root).
func (s *HTTPServer) RepoURL(root, bare string) string {
	rel, _ := filepath.Rel(root, bare)
	return s.URL + "/" + strings.TrimPrefix(filepath.ToSlash(rel), "/")
}

// ClosedPort is a loopback address nothing listens on (it was listened on and closed).
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
