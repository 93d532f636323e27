package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// DefaultMaxBody is the body limit for ReadBody when none is given: GitHub never delivers
// payloads over 25 MB, and no other provider documents larger ones.
const DefaultMaxBody int64 = 25 << 20

// ReadBody reads the whole request body, refusing more than limit bytes (DefaultMaxBody when
// limit <= 0) with a 413 *Error, and a body that cannot be read (cut connection) with 400. It
// closes the body.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	defer r.Body.Close()
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body of %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "body is over the limit of %d bytes", mbe.Limit)
		}
		return nil, errorf(http.StatusBadRequest, "reading body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body is over the limit of %d bytes", limit)
	}
	return b, nil
}

// Parse authenticates and decodes one webhook delivery. body is the raw request body (see
// ReadBody); r supplies the headers. Errors are *Error with the status to reply with.
func Parse(r *http.Request, body []byte, secrets Secrets) (Event, error) {
	if r == nil {
		return nil, errorf(http.StatusBadRequest, "no request")
	}
	h := r.Header
	provider, kind, delivery := detect(h)
	if provider == "" {
		return nil, errorf(http.StatusBadRequest, "unknown provider: no X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Forgejo-Event header")
	}
	if kind == "" {
		return nil, errorf(http.StatusBadRequest, "%s: empty event header", provider)
	}
	payload, err := jsonPayload(provider, h.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil || top == nil {
		return nil, errorf(http.StatusBadRequest, "%s: body is not a JSON object: %v", provider, jsonErr(err))
	}
	repo := repoName(provider, top)
	if err := verify(provider, h, body, secrets, repo); err != nil {
		return nil, err
	}
	var ev Event
	switch provider {
	case GitLab:
		ev, err = gitlabEvent(kind, delivery, payload)
	default:
		ev, err = githubEvent(provider, kind, delivery, payload)
	}
	// The secret that verified a push must be its repository's: the push decoders match object
	// keys case aside (the last of "repository" and "Repository" wins) where repoName reads the
	// exact key, and a holder of one repository's secret must not sign another's pushes.
	if p, ok := ev.(Push); ok && err == nil && p.Repo.FullName != repo {
		return nil, errorf(http.StatusBadRequest, "%s push: repository %q is not %q, whose secret verified it", provider, p.Repo.FullName, repo)
	}
	return ev, err
}

// detect names the provider, the event kind and the delivery id from the headers.
func detect(h http.Header) (provider, kind, delivery string) {
	switch {
	case h.Get("X-Forgejo-Event") != "" || h.Get("X-Forgejo-Signature") != "" || h.Get("X-Forgejo-Delivery") != "":
		return Forgejo, first(h.Get("X-Forgejo-Event"), h.Get("X-Gitea-Event")), first(h.Get("X-Forgejo-Delivery"), h.Get("X-Gitea-Delivery"))
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Gitea-Delivery") != "":
		return Gitea, h.Get("X-Gitea-Event"), h.Get("X-Gitea-Delivery")
	case h.Get("X-Gitlab-Event") != "":
		return GitLab, h.Get("X-Gitlab-Event"), first(h.Get("Idempotency-Key"), h.Get("X-Gitlab-Event-UUID"))
	case h.Get("X-GitHub-Event") != "":
		return GitHub, h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")
	}
	return "", "", ""
}

// jsonPayload checks the content type and returns the JSON document of the body.
func jsonPayload(provider, contentType string, body []byte) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, errorf(http.StatusUnsupportedMediaType, "%s: content type %q: want application/json", provider, contentType)
	}
	switch {
	case mt == "application/json":
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, errorf(http.StatusBadRequest, "%s: empty body", provider)
		}
		return body, nil
	case mt == "application/x-www-form-urlencoded" && provider != GitLab:
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "%s: form body: %v", provider, err)
		}
		p := v.Get("payload")
		if p == "" {
			return nil, errorf(http.StatusBadRequest, "%s: form body has no payload field", provider)
		}
		return []byte(p), nil
	}
	return nil, errorf(http.StatusUnsupportedMediaType, "%s: content type %q is not accepted", provider, mt)
}

// verify checks the delivery's signature or token against the secret of its source.
func verify(provider string, h http.Header, body []byte, secrets Secrets, repo string) error {
	var secret []byte
	ok := false
	if secrets != nil {
		secret, ok = secrets.Secret(provider, repo)
	}
	if !ok || len(secret) == 0 {
		return errorf(http.StatusUnauthorized, "%s: no secret configured for %q", provider, repo)
	}
	if provider == GitLab {
		token := h.Get("X-Gitlab-Token")
		if token == "" {
			return errorf(http.StatusUnauthorized, "gitlab: missing X-Gitlab-Token")
		}
		// Compare digests: constant time whatever the lengths.
		a, b := sha256.Sum256([]byte(token)), sha256.Sum256(secret)
		if !hmac.Equal(a[:], b[:]) {
			return errorf(http.StatusUnauthorized, "gitlab: X-Gitlab-Token does not match")
		}
		return nil
	}
	var header, sig string
	switch provider {
	case GitHub:
		header = "X-Hub-Signature-256"
		v := h.Get(header)
		if v == "" {
			return errorf(http.StatusUnauthorized, "github: missing %s", header)
		}
		var found bool
		if sig, found = strings.CutPrefix(v, "sha256="); !found {
			return errorf(http.StatusUnauthorized, "github: %s is not sha256=<hex>", header)
		}
	case Gitea:
		header = "X-Gitea-Signature"
		sig = h.Get(header)
	case Forgejo:
		header = "X-Forgejo-Signature"
		sig = h.Get(header)
	}
	if sig == "" {
		return errorf(http.StatusUnauthorized, "%s: missing %s", provider, header)
	}
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(got) != sha256.Size {
		return errorf(http.StatusUnauthorized, "%s: %s is not a hex SHA-256 HMAC", provider, header)
	}
	if !hmac.Equal(got, Sign(secret, body)) {
		return errorf(http.StatusUnauthorized, "%s: %s does not match the body", provider, header)
	}
	return nil
}

// Sign is HMAC-SHA256(secret, body): the raw bytes behind X-Hub-Signature-256 ("sha256=" + hex),
// X-Gitea-Signature and X-Forgejo-Signature (hex).
func Sign(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// SignatureHeader is the X-Hub-Signature-256 value of body: "sha256=" + lowercase hex.
func SignatureHeader(secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(Sign(secret, body))
}

// repoName finds the repository a payload claims, to choose the secret ("" if none).
func repoName(provider string, top map[string]json.RawMessage) string {
	if provider == GitLab {
		var p struct {
			PathWithNamespace string `json:"path_with_namespace"`
		}
		if raw, ok := top["project"]; ok && json.Unmarshal(raw, &p) == nil && p.PathWithNamespace != "" {
			return p.PathWithNamespace
		}
		return ""
	}
	var repo struct {
		FullName string `json:"full_name"`
	}
	if raw, ok := top["repository"]; ok && json.Unmarshal(raw, &repo) == nil {
		return repo.FullName
	}
	return ""
}

func jsonErr(err error) error {
	if err == nil {
		return errors.New("null")
	}
	return err
}

func first(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
