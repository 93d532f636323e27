package webhook

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const newBranchFile = "octokit__api.github.com__push__with-new-branch.payload.json"

// TestGitHubTestVector is the vector of GitHub's "Validating webhook deliveries".
func TestGitHubTestVector(t *testing.T) {
	t.Parallel()
	const want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := hex.EncodeToString(Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))); got != want {
		t.Fatalf("HMAC = %s, want %s", got, want)
	}
	if got := SignatureHeader([]byte("It's a Secret to Everybody"), []byte("Hello, World!")); got != "sha256="+want {
		t.Fatalf("header = %s", got)
	}
	// And verify accepts it: a ping whose body is the vector's is not JSON, so build the header
	// by hand over a JSON body and check the verifier directly on the vector.
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+want)
	if err := verify(GitHub, h, []byte("Hello, World!"), StaticSecrets{"github:*": "It's a Secret to Everybody"}, ""); err != nil {
		t.Fatalf("verify(test vector) = %v", err)
	}
	h.Set("X-Hub-Signature-256", "sha256="+strings.ToUpper(want))
	if err := verify(GitHub, h, []byte("Hello, World!"), StaticSecrets{"github:*": "It's a Secret to Everybody"}, ""); err != nil {
		t.Fatalf("verify(upper-case hex) = %v", err)
	}
}

// TestRefusals: every refusal and its status.
func TestRefusals(t *testing.T) {
	t.Parallel()
	body := sample(t, "github", newBranchFile)
	glBody := sample(t, "gitlab", "gitlab-docs__push_event_example.json")
	tests := []struct {
		name    string
		req     func() (*http.Request, []byte)
		secrets Secrets
		status  int
	}{
		{"github bad signature", func() (*http.Request, []byte) {
			return githubRequest("push", "d", body, "not the secret"), body
		}, testSecrets, 401},
		{"github missing signature", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			r.Header.Del("X-Hub-Signature-256")
			return r, body
		}, testSecrets, 401},
		{"github sha1 only", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			r.Header.Del("X-Hub-Signature-256")
			r.Header.Set("X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567")
			return r, body
		}, testSecrets, 401},
		{"github signature without prefix", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			r.Header.Set("X-Hub-Signature-256", strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256="))
			return r, body
		}, testSecrets, 401},
		{"github signature not hex", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			r.Header.Set("X-Hub-Signature-256", "sha256=zz")
			return r, body
		}, testSecrets, 401},
		{"github body altered after signing", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			b := bytes.Replace(body, []byte("Initial commit"), []byte("Initial commiT"), 1)
			return r, b
		}, testSecrets, 401},
		{"github no secret for repo", func() (*http.Request, []byte) {
			return githubRequest("push", "d", body, testSecret), body
		}, StaticSecrets{"github:someone/else": testSecret}, 401},
		{"github empty secret", func() (*http.Request, []byte) {
			return githubRequest("push", "d", body, ""), body
		}, StaticSecrets{"github:*": ""}, 401},
		{"nil secrets", func() (*http.Request, []byte) {
			return githubRequest("push", "d", body, testSecret), body
		}, nil, 401},
		{"ignored event still verified", func() (*http.Request, []byte) {
			return githubRequest("issues", "d", body, "wrong"), body
		}, testSecrets, 401},
		{"ping still verified", func() (*http.Request, []byte) {
			b := []byte(`{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"Codertocat/Hello-World"}}`)
			return githubRequest("ping", "d", b, "wrong"), b
		}, testSecrets, 401},
		{"gitlab wrong token", func() (*http.Request, []byte) {
			return gitlabRequest("Push Hook", glBody, "wrong"), glBody
		}, testSecrets, 401},
		{"gitlab token prefix of secret", func() (*http.Request, []byte) {
			return gitlabRequest("Push Hook", glBody, testSecret[:5]), glBody
		}, testSecrets, 401},
		{"gitlab missing token", func() (*http.Request, []byte) {
			return gitlabRequest("Push Hook", glBody, ""), glBody
		}, testSecrets, 401},
		{"gitlab no secret configured", func() (*http.Request, []byte) {
			return gitlabRequest("Push Hook", glBody, testSecret), glBody
		}, StaticSecrets{"github:*": testSecret}, 401},
		{"gitea signed with another secret", func() (*http.Request, []byte) {
			return giteaRequest("push", body, "wrong"), body
		}, testSecrets, 401},
		{"gitea missing signature", func() (*http.Request, []byte) {
			r := giteaRequest("push", body, testSecret)
			r.Header.Del("X-Gitea-Signature")
			return r, body
		}, testSecrets, 401},
		{"forgejo missing signature", func() (*http.Request, []byte) {
			r := forgejoRequest("push", body, testSecret)
			r.Header.Del("X-Forgejo-Signature")
			return r, body
		}, testSecrets, 401},
		// Gitea's GitHub-style headers do not make it GitHub: with only a GitHub secret, 401.
		{"gitea headers with github secret only", func() (*http.Request, []byte) {
			return giteaRequest("push", body, testSecret), body
		}, StaticSecrets{"github:*": testSecret}, 401},
		{"wrong content type", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			r.Header.Set("Content-Type", "text/plain")
			return r, body
		}, testSecrets, 415},
		{"missing content type", func() (*http.Request, []byte) {
			r := githubRequest("push", "d", body, testSecret)
			r.Header.Del("Content-Type")
			return r, body
		}, testSecrets, 415},
		{"gitlab form body", func() (*http.Request, []byte) {
			r := gitlabRequest("Push Hook", glBody, testSecret)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r, glBody
		}, testSecrets, 415},
		{"truncated body signed in full", func() (*http.Request, []byte) {
			return githubRequest("push", "d", body, testSecret), body[:len(body)/2]
		}, testSecrets, 400},
		{"truncated body signed as sent", func() (*http.Request, []byte) {
			b := body[:len(body)/2]
			return githubRequest("push", "d", b, testSecret), b
		}, testSecrets, 400},
		{"gitlab truncated body", func() (*http.Request, []byte) {
			b := glBody[:len(glBody)-10]
			return gitlabRequest("Push Hook", b, testSecret), b
		}, testSecrets, 400},
		{"empty body", func() (*http.Request, []byte) {
			return githubRequest("push", "d", nil, testSecret), nil
		}, testSecrets, 400},
		{"json array", func() (*http.Request, []byte) {
			b := []byte(`[1,2]`)
			return githubRequest("push", "d", b, testSecret), b
		}, testSecrets, 400},
		{"json null", func() (*http.Request, []byte) {
			b := []byte(`null`)
			return githubRequest("push", "d", b, testSecret), b
		}, testSecrets, 400},
		{"unknown provider", func() (*http.Request, []byte) {
			r := newRequest(body, "application/json", map[string]string{"X-Gogs-Event": "push"})
			return r, body
		}, testSecrets, 400},
		{"no headers at all", func() (*http.Request, []byte) {
			return newRequest(body, "application/json", nil), body
		}, testSecrets, 400},
		{"form without payload", func() (*http.Request, []byte) {
			b := []byte("foo=bar")
			r := githubRequest("push", "d", b, testSecret)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r, b
		}, testSecrets, 400},
		{"form with bad escape", func() (*http.Request, []byte) {
			b := []byte("payload=%zz")
			r := githubRequest("push", "d", b, testSecret)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r, b
		}, testSecrets, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, b := tt.req()
			ev, err := Parse(r, b, tt.secrets)
			if ev != nil {
				t.Errorf("event %#v returned with an error", ev)
			}
			wantStatus(t, err, tt.status)
		})
	}
}

// TestMissingFields: signed, well-formed JSON that is not a usable push is 400.
func TestMissingFields(t *testing.T) {
	t.Parallel()
	var base map[string]any
	if err := json.Unmarshal(sample(t, "github", newBranchFile), &base); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"no ref", func(m map[string]any) { delete(m, "ref") }},
		{"no after", func(m map[string]any) { delete(m, "after") }},
		{"no before", func(m map[string]any) { delete(m, "before") }},
		{"after is an option", func(m map[string]any) { m["after"] = "--output=/tmp/x" }},
		{"short sha", func(m map[string]any) { m["after"] = "6113728" }},
		{"both zero", func(m map[string]any) { m["after"] = zeroSHA }},
		{"no full_name", func(m map[string]any) { m["repository"].(map[string]any)["full_name"] = "" }},
		{"bad commit id", func(m map[string]any) { m["commits"].([]any)[0].(map[string]any)["id"] = "HEAD~1" }},
		{"commits not a list", func(m map[string]any) { m["commits"] = "many" }},
		{"created not a bool", func(m map[string]any) { m["created"] = "yes" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m map[string]any
			raw, _ := json.Marshal(base)
			_ = json.Unmarshal(raw, &m)
			tt.mutate(m)
			b, _ := json.Marshal(m)
			secrets := StaticSecrets{"github:*": testSecret}
			_, err := Parse(githubRequest("push", "d", b, testSecret), b, secrets)
			wantStatus(t, err, 400)
		})
	}
}

func TestFormEncodedGitHub(t *testing.T) {
	t.Parallel()
	body := sample(t, "github", newBranchFile)
	form := []byte("payload=" + url.QueryEscape(string(body)))
	r := githubRequest("push", "d1", form, testSecret) // signed over the form bytes
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ev, err := Parse(r, form, testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ev, newBranch) {
		t.Errorf("form push = %+v, want %+v", ev, newBranch)
	}
	// Signed over the JSON instead of the bytes sent: refused.
	r = githubRequest("push", "d1", body, testSecret)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err = Parse(r, form, testSecrets)
	wantStatus(t, err, 401)
}

func TestEventKinds(t *testing.T) {
	t.Parallel()
	ping := []byte(`{"zen":"Design for failure.","hook_id":109948940,"hook":{"type":"Repository","id":109948940,"events":["push"]},` +
		`"repository":{"full_name":"Codertocat/Hello-World"},"sender":{"login":"Codertocat"}}`)
	orgPing := []byte(`{"zen":"Speak like a human.","hook_id":7,"organization":{"login":"Octocoders"}}`)
	issue := []byte(`{"action":"opened","issue":{"number":1},"repository":{"full_name":"Codertocat/Hello-World"}}`)
	mr := []byte(`{"object_kind":"merge_request","project":{"path_with_namespace":"mike/diaspora"}}`)
	body := sample(t, "github", newBranchFile)
	glBody := sample(t, "gitlab", "gitlab-docs__push_event_example.json")
	var sys map[string]any
	_ = json.Unmarshal(glBody, &sys)
	sysBody, _ := json.Marshal(sys) // System hooks send the push payload under X-Gitlab-Event: System Hook
	tests := []struct {
		name    string
		req     *http.Request
		body    []byte
		secrets Secrets
		want    any
	}{
		{"github ping", githubRequest("ping", "p1", ping, testSecret), ping, testSecrets,
			Ping{Provider: GitHub, DeliveryID: "p1", Zen: "Design for failure.", HookID: 109948940}},
		{"github org ping (no repository)", githubRequest("ping", "p2", orgPing, testSecret), orgPing, StaticSecrets{"github:*": testSecret},
			Ping{Provider: GitHub, DeliveryID: "p2", Zen: "Speak like a human.", HookID: 7}},
		{"github issues", githubRequest("issues", "i1", issue, testSecret), issue, testSecrets,
			Ignored{Provider: GitHub, DeliveryID: "i1", Kind: "issues", Reason: "only push events start deployments"}},
		{"github create", githubRequest("create", "c1", body, testSecret), body, testSecrets,
			Ignored{Provider: GitHub, DeliveryID: "c1", Kind: "create", Reason: "only push events start deployments"}},
		{"gitlab merge request", gitlabRequest("Merge Request Hook", mr, testSecret), mr, testSecrets,
			Ignored{Provider: GitLab, DeliveryID: "f5e5f430-f57b-4e6e-9fac-d9128cd7232f", Kind: "Merge Request Hook", Reason: "only push and tag push events start deployments"}},
		{"gitea delete", giteaRequest("delete", body, testSecret), body, testSecrets,
			Ignored{Provider: Gitea, DeliveryID: "a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11", Kind: "delete", Reason: "only push events start deployments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Parse(tt.req, tt.body, tt.secrets)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, tt.want) {
				t.Errorf("got %#v\nwant %#v", ev, tt.want)
			}
		})
	}
	t.Run("gitlab system hook push", func(t *testing.T) {
		t.Parallel()
		ev, err := Parse(gitlabRequest("System Hook", sysBody, testSecret), sysBody, testSecrets)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := ev.(Push); !ok || p.Branch != "master" || !p.Truncated {
			t.Errorf("system hook = %#v", ev)
		}
	})
}

// TestGiteaForgejo: detection order and their signature headers. There are no vendor samples;
// the GitHub sample stands in for the body (Gitea copied GitHub's push shape), plus a payload in
// Gitea's own shape (pusher login, total_commits, no created/deleted flags).
func TestGiteaForgejo(t *testing.T) {
	t.Parallel()
	body := sample(t, "github", newBranchFile)
	gitea := []byte(`{"ref":"refs/heads/main","before":"` + zeroSHA + `","after":"` + ghBefore + `",` +
		`"compare_url":"https://gitea.example/o/r/compare/0...6","total_commits":3,` +
		`"commits":[{"id":"` + ghBefore + `","message":"add config\n","url":"x","author":{"name":"Ada","email":"ada@example.com","username":"ada"},` +
		`"committer":{"name":"Ada","email":"ada@example.com","username":"ada"},"verification":null,"timestamp":"2024-03-01T10:00:00+01:00",` +
		`"added":["iac/dev/app/web/config.json"],"removed":[],"modified":[]}],` +
		`"head_commit":null,"repository":{"full_name":"o/r","clone_url":"https://gitea.example/o/r.git","html_url":"https://gitea.example/o/r","created_at":"2024-01-01T00:00:00Z"},` +
		`"pusher":{"id":1,"login":"ada","full_name":"Ada","email":"ada@example.com","username":"ada"}}`)
	wantGitea := Push{Provider: Gitea, DeliveryID: "a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11", Ref: "refs/heads/main", Branch: "main",
		Before: zeroSHA, After: ghBefore, Created: true, Truncated: true, Pusher: "ada",
		Repo: RepoInfo{FullName: "o/r", CloneURL: "https://gitea.example/o/r.git", HTMLURL: "https://gitea.example/o/r"},
		Commits: []Commit{{ID: ghBefore, Message: "add config\n", Author: "Ada <ada@example.com>", Timestamp: ts("2024-03-01T09:00:00Z"),
			Added: []string{"iac/dev/app/web/config.json"}}}}
	tests := []struct {
		name string
		req  *http.Request
		body []byte
		want Push
	}{
		{"gitea github-shaped", giteaRequest("push", body, testSecret), body, func() Push {
			p := newBranch
			p.Provider, p.DeliveryID = Gitea, "a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11"
			return p
		}()},
		{"forgejo github-shaped", forgejoRequest("push", body, testSecret), body, func() Push {
			p := newBranch
			p.Provider, p.DeliveryID = Forgejo, "0b0c7f4e-93a4-4b5e-8a0a-3c1c5f1f7e22"
			return p
		}()},
		{"gitea own shape", giteaRequest("push", gitea, testSecret), gitea, wantGitea},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Parse(tt.req, tt.body, testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, tt.want) {
				t.Errorf("got  %+v\nwant %+v", ev, tt.want)
			}
		})
	}
	t.Run("forgejo needs its own secret", func(t *testing.T) {
		t.Parallel()
		_, err := Parse(forgejoRequest("push", body, testSecret), body, StaticSecrets{"gitea:*": testSecret, "github:*": testSecret})
		wantStatus(t, err, 401)
	})
	t.Run("gitea signature is bare hex", func(t *testing.T) {
		t.Parallel()
		r := giteaRequest("push", body, testSecret)
		r.Header.Set("X-Gitea-Signature", "sha256="+r.Header.Get("X-Gitea-Signature"))
		_, err := Parse(r, body, testSecrets)
		wantStatus(t, err, 401)
	})
}

func TestDeliveryKey(t *testing.T) {
	t.Parallel()
	body := sample(t, "github", newBranchFile)
	glBody := sample(t, "gitlab", "gitlab-docs__push_event_example.json")
	noIdem := gitlabRequest("Push Hook", glBody, testSecret)
	noIdem.Header.Del("Idempotency-Key")
	none := gitlabRequest("Push Hook", glBody, testSecret)
	none.Header.Del("Idempotency-Key")
	none.Header.Del("X-Gitlab-Event-UUID")
	tests := []struct {
		name string
		req  *http.Request
		body []byte
		want string
	}{
		{"github", githubRequest("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body, testSecret), body, "github:72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"gitlab idempotency key", gitlabRequest("Push Hook", glBody, testSecret), glBody, "gitlab:f5e5f430-f57b-4e6e-9fac-d9128cd7232f"},
		{"gitlab event uuid fallback", noIdem, glBody, "gitlab:13792a34-cac6-4fda-95a8-c58e00a3954e"},
		{"gitlab no id", none, glBody, ""},
		{"gitea", giteaRequest("push", body, testSecret), body, "gitea:a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11"},
		{"forgejo", forgejoRequest("push", body, testSecret), body, "forgejo:0b0c7f4e-93a4-4b5e-8a0a-3c1c5f1f7e22"},
		{"ignored", githubRequest("star", "s1", body, testSecret), body, "github:s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Parse(tt.req, tt.body, testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			if got := DeliveryKey(ev); got != tt.want {
				t.Errorf("DeliveryKey = %q, want %q", got, tt.want)
			}
		})
	}
	if DeliveryKey(nil) != "" || DeliveryKey(&Ping{Provider: GitHub, DeliveryID: "x"}) != "github:x" {
		t.Error("DeliveryKey of nil / *Ping")
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		req    func() *http.Request
		limit  int64
		want   string
		status int
	}{
		{"under", func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("0123456789")) }, 10, "0123456789", 0},
		{"over by one", func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("0123456789a")) }, 10, "", 413},
		{"content-length over", func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader("x"))
			r.ContentLength = 1 << 30
			return r
		}, 10, "", 413},
		{"unknown length over", func() *http.Request {
			r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 20))))
			r.ContentLength = -1
			return r
		}, 10, "", 413},
		{"max bytes reader", func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 20)))
			r.Body = http.MaxBytesReader(nil, r.Body, 5)
			return r
		}, 10, "", 413},
		{"read error", func() *http.Request {
			r := httptest.NewRequest("POST", "/", nil)
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader("{"), errReader{}))
			return r
		}, 10, "", 400},
		{"default limit", func() *http.Request { return httptest.NewRequest("POST", "/", strings.NewReader("{}")) }, 0, "{}", 0},
		{"no body", func() *http.Request { return httptest.NewRequest("POST", "/", nil) }, 10, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := ReadBody(tt.req(), tt.limit)
			if tt.status != 0 {
				wantStatus(t, err, tt.status)
				return
			}
			if err != nil || string(b) != tt.want {
				t.Fatalf("ReadBody = %q, %v; want %q", b, err, tt.want)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection reset") }

func TestStaticSecrets(t *testing.T) {
	t.Parallel()
	s := StaticSecrets{"github:Org/Repo": "exact", "github:*": "any", "gitlab:group/p": "gl", "gitea:o/r": ""}
	tests := []struct {
		provider, repo, want string
		ok                   bool
	}{
		{"github", "Org/Repo", "exact", true},
		{"github", "org/repo", "exact", true},
		{"github", "other/repo", "any", true},
		{"github", "", "any", true},
		{"gitlab", "group/p", "gl", true},
		{"gitlab", "group/q", "", false},
		{"gitea", "o/r", "", false},
		{"forgejo", "o/r", "", false},
	}
	for _, tt := range tests {
		got, ok := s.Secret(tt.provider, tt.repo)
		if string(got) != tt.want || ok != tt.ok {
			t.Errorf("Secret(%s, %s) = %q, %v; want %q, %v", tt.provider, tt.repo, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	tests := []struct{ ref, branch, tag string }{
		{"refs/heads/main", "main", ""},
		{"refs/heads/feature/x", "feature/x", ""},
		{"refs/tags/v1.0.0", "", "v1.0.0"},
		{"refs/notes/commits", "", ""},
		{"main", "", ""},
	}
	for _, tt := range tests {
		if b, tg := SplitRef(tt.ref); b != tt.branch || tg != tt.tag {
			t.Errorf("SplitRef(%q) = %q, %q", tt.ref, b, tg)
		}
	}
	for s, want := range map[string]bool{zeroSHA: true, strings.Repeat("0", 64): true, "": false, ghBefore: false} {
		if IsZeroSHA(s) != want {
			t.Errorf("IsZeroSHA(%q) != %v", s, want)
		}
	}
}

// TestGitLabCreatedDeleted: GitLab has no flags; they come from zero SHAs.
func TestGitLabCreatedDeleted(t *testing.T) {
	t.Parallel()
	mk := func(ref, before, after string, commits string, total int) []byte {
		return []byte(fmt.Sprintf(`{"object_kind":"push","ref":%q,"before":%q,"after":%q,"user_username":"u","project":{"path_with_namespace":"g/p"},"commits":%s,"total_commits_count":%d}`,
			ref, before, after, commits, total))
	}
	tests := []struct {
		name                 string
		body                 []byte
		created, deleted, tr bool
		branch, tag          string
	}{
		{"branch delete", mk("refs/heads/old", glAfter, zeroSHA, "[]", 0), false, true, false, "old", ""},
		{"branch create", mk("refs/heads/new", zeroSHA, glAfter, "[]", 0), true, false, false, "new", ""},
		{"tag delete", mk("refs/tags/v1", glAfter, zeroSHA, "[]", 0), false, true, false, "", "v1"},
		// A branch moved with no commit listed (a rewind by a force push, a move to a commit
		// pushed before): its files are known by diffing, as for a truncated push.
		{"sha256 repo, moved with no commit listed", mk("refs/heads/main", strings.Repeat("a", 64), strings.Repeat("b", 64), "[]", 0), false, false, true, "main", ""},
		{"rewound", mk("refs/heads/main", glAfter, glBefore, "[]", 0), false, false, true, "main", ""},
		{"commit without file lists", mk("refs/heads/main", glBefore, glAfter, `[{"id":"`+glAfter+`","message":"m","author":{"name":"n","email":"e@x"}}]`, 1), false, false, true, "main", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Parse(gitlabRequest("Push Hook", tt.body, testSecret), tt.body, testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			p := ev.(Push)
			if p.Created != tt.created || p.Deleted != tt.deleted || p.Truncated != tt.tr || p.Branch != tt.branch || p.Tag != tt.tag || p.Forced {
				t.Errorf("got %+v", p)
			}
		})
	}
}

// TestGitHubTruncation: the 2048-commit cap and commits without file lists.
func TestGitHubTruncation(t *testing.T) {
	t.Parallel()
	var base map[string]any
	if err := json.Unmarshal(sample(t, "github", newBranchFile), &base); err != nil {
		t.Fatal(err)
	}
	commit := base["commits"].([]any)[0].(map[string]any)
	build := func(n int, files bool) []byte {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m["before"], m["created"] = ghAEBfore, false
		var cs []any
		for i := 0; i < n; i++ {
			c := map[string]any{}
			for k, v := range commit {
				c[k] = v
			}
			if !files {
				delete(c, "added")
				c["removed"], c["modified"] = []any{}, []any{}
			}
			cs = append(cs, c)
		}
		m["commits"] = cs
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		body []byte
		want bool
	}{
		{"one commit", build(1, true), false},
		{"2047 commits", build(GitHubMaxCommits-1, true), false},
		{"2048 commits (the cap)", build(GitHubMaxCommits, true), true},
		{"large commit without file lists", build(1, false), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Parse(githubRequest("push", "d", tt.body, testSecret), tt.body, testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			if p := ev.(Push); p.Truncated != tt.want || p.Created {
				t.Errorf("Truncated = %v (created %v), want %v", p.Truncated, p.Created, tt.want)
			}
		})
	}
}

// TestTimestamps: epoch numbers and ISO strings both decode; nothing fails.
func TestTimestamps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want time.Time
	}{
		{`"2019-05-15T15:19:25Z"`, ts("2019-05-15T15:19:25Z")},
		{`"2011-12-12T14:27:31+02:00"`, ts("2011-12-12T12:27:31Z")},
		{`"2011-12-12T14:27:31+0200"`, ts("2011-12-12T12:27:31Z")},
		{`"2011-12-12 14:27:31 +0200"`, ts("2011-12-12T12:27:31Z")},
		{`"2019-05-15T15:19:25.123456789Z"`, time.Date(2019, 5, 15, 15, 19, 25, 123456789, time.UTC)},
		{`1557933565`, time.Unix(1557933565, 0).UTC()},
		{`1557933565.5`, time.Unix(1557933565, 5e8).UTC()},
		{`1557933565123`, time.UnixMilli(1557933565123).UTC()},
		{`"1557933565"`, time.Unix(1557933565, 0).UTC()},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
		{`"yesterday"`, time.Time{}},
		{`true`, time.Time{}},
		{`{"seconds":1}`, time.Time{}},
		{`1e300`, time.Time{}},
		{`-1e300`, time.Time{}},
	}
	for _, tt := range tests {
		var v struct {
			T flexTime `json:"t"`
		}
		if err := json.Unmarshal([]byte(`{"t":`+tt.raw+`}`), &v); err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if !v.T.Time().Equal(tt.want) {
			t.Errorf("%s = %v, want %v", tt.raw, v.T.Time(), tt.want)
		}
	}
	// In a push: epoch commit timestamps next to ISO ones.
	body := bytes.Replace(sample(t, "github", newBranchFile), []byte(`"timestamp": "2019-05-15T15:19:25Z"`), []byte(`"timestamp": 1557933565`), 1)
	ev, err := Parse(githubRequest("push", "d", body, testSecret), body, testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.(Push).Commits[0].Timestamp; !got.Equal(time.Unix(1557933565, 0)) {
		t.Errorf("epoch commit timestamp = %v", got)
	}
}

// Gitea and Forgejo list a push's commits newest first: they are put oldest first, the pushed
// head last, so that the head's author and message are the head's and the files fold in order
// (a config modified by the older commit and deleted by the newer is removed).
func TestGiteaCommitsNewestFirst(t *testing.T) {
	t.Parallel()
	older, newer := strings.Repeat("1", 40), strings.Repeat("2", 40)
	const cfg = "iac/dev/app/web/config.json"
	commit := func(id, who, msg, added, removed string) string {
		return `{"id":"` + id + `","message":"` + msg + `","author":{"name":"` + who + `","email":"` + strings.ToLower(who) + `@example.com"},` +
			`"timestamp":"2024-03-01T10:00:00Z","added":[],"modified":[` + added + `],"removed":[` + removed + `]}`
	}
	body := []byte(`{"ref":"refs/heads/main","before":"` + ghBefore + `","after":"` + newer + `","total_commits":2,"commits":[` +
		commit(newer, "Bob", "remove web", "", `"`+cfg+`"`) + `,` + commit(older, "Alice", "tune web", `"`+cfg+`"`, "") + `],` +
		`"repository":{"full_name":"o/r"},"pusher":{"login":"bob"}}`)
	ev, err := Parse(giteaRequest("push", body, testSecret), body, testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	p := ev.(Push)
	if len(p.Commits) != 2 || p.Commits[0].ID != older || p.Commits[1].ID != newer || p.Commits[1].Author != "Bob <bob@example.com>" {
		t.Fatalf("commits %+v: want the older first, the head (Bob's) last", p.Commits)
	}
	if got := ChangedFiles(p); !reflect.DeepEqual(got, []FileChange{{Path: cfg, Removed: true}}) {
		t.Errorf("changed files %+v, want %s removed", got, cfg)
	}
}

// TestGitHubForcePushIsDiffed: a force push lists only the commits from where Before and After
// part; the commits it discarded from Before changed files too (a config they changed is back to
// its older content), so the push is Truncated: the caller diffs Before..After.
func TestGitHubForcePushIsDiffed(t *testing.T) {
	t.Parallel()
	before, after := strings.Repeat("1", 40), strings.Repeat("2", 40)
	body := func(forced bool) []byte {
		return []byte(`{"ref":"refs/heads/main","before":"` + before + `","after":"` + after + `","created":false,"deleted":false,` +
			`"forced":` + strconv.FormatBool(forced) + `,"commits":[{"id":"` + after + `","message":"docs","timestamp":"2024-03-01T10:00:00Z",` +
			`"author":{"name":"Ada","email":"ada@example.com"},"added":[],"removed":[],"modified":["README.md"]}],` +
			`"repository":{"full_name":"Codertocat/Hello-World"},"pusher":{"name":"ada"}}`)
	}
	for _, forced := range []bool{false, true} {
		b := body(forced)
		ev, err := Parse(githubRequest("push", "d", b, testSecret), b, testSecrets)
		if err != nil {
			t.Fatal(err)
		}
		p := ev.(Push)
		if p.Forced != forced || p.Truncated != forced {
			t.Errorf("forced %v: Forced = %v, Truncated = %v; want Truncated %v (diff %s..%s)", forced, p.Forced, p.Truncated, forced, before, after)
		}
	}
}

// TestSecretIsTheDecodedRepositorys: the secret that verifies a delivery is the one of the
// repository the push is decoded as. JSON object keys match struct fields case aside, so a
// payload with both "repository" and "Repository" named one repository to choose the secret
// (the exact key) and another as the push's (the last key): a holder of one repository's secret
// could sign pushes of another.
func TestSecretIsTheDecodedRepositorys(t *testing.T) {
	t.Parallel()
	secrets := StaticSecrets{"github:acme/config": "config-secret", "github:acme/other": "other-secret"}
	before, after := strings.Repeat("1", 40), strings.Repeat("2", 40)
	push := func(repos string) []byte {
		return []byte(`{"ref":"refs/heads/main","before":"` + before + `","after":"` + after + `",` + repos + `,` +
			`"commits":[{"id":"` + after + `","message":"m","author":{"name":"Eve"},"added":[],"removed":[],"modified":["iac/prod/vpc/core/config.json"]}],` +
			`"pusher":{"name":"eve"}}`)
	}
	for _, tt := range []struct{ name, repos string }{
		{"exact key first", `"repository":{"full_name":"acme/other"},"Repository":{"full_name":"acme/config"}`},
		{"exact key last", `"Repository":{"full_name":"acme/config"},"repository":{"full_name":"acme/other"}`},
		{"other case only", `"REPOSITORY":{"full_name":"acme/config"}`},
	} {
		b := push(tt.repos)
		ev, err := Parse(githubRequest("push", "d", b, "other-secret"), b, secrets)
		if err == nil {
			if got := ev.(Push).Repo.FullName; got != "acme/other" {
				t.Errorf("%s: signed with acme/other's secret, accepted as a push of %q", tt.name, got)
			}
		} else if e, ok := err.(*Error); !ok || e.Status/100 != 4 {
			t.Errorf("%s: error %v, want a 4xx *Error", tt.name, err)
		}
	}
	// GitLab: the project, likewise.
	gl := []byte(`{"object_kind":"push","ref":"refs/heads/main","before":"` + before + `","after":"` + after + `",` +
		`"project":{"path_with_namespace":"acme/other"},"Project":{"path_with_namespace":"acme/config"},"commits":[]}`)
	ev, err := Parse(gitlabRequest("Push Hook", gl, "other-secret"), gl, StaticSecrets{"gitlab:acme/config": "config-secret", "gitlab:acme/other": "other-secret"})
	if err == nil {
		t.Errorf("gitlab: signed with acme/other's token, accepted as a push of %q", ev.(Push).Repo.FullName)
	} else {
		wantStatus(t, err, http.StatusBadRequest)
	}
	// A payload naming one repository, once, is still accepted.
	b := push(`"repository":{"full_name":"acme/other"}`)
	if _, err := Parse(githubRequest("push", "d", b, "other-secret"), b, secrets); err != nil {
		t.Errorf("a plain push of acme/other signed with its secret: %v", err)
	}
}

// TestGitHubCommitAtItsFileCapIsDiffed: GitHub reports at most 3000 changed files per commit; a
// commit listing that many may have changed more (a config past the cap, modified or removed,
// would never deploy), so the push is Truncated: the caller diffs Before..After.
func TestGitHubCommitAtItsFileCapIsDiffed(t *testing.T) {
	t.Parallel()
	before, after := strings.Repeat("1", 40), strings.Repeat("2", 40)
	body := func(n int) []byte {
		files := make([]string, n)
		for i := range files {
			files[i] = fmt.Sprintf("iac/prod/app/s%05d/config.json", i)
		}
		added, _ := json.Marshal(files[:n/2])
		modified, _ := json.Marshal(files[n/2:])
		return []byte(`{"ref":"refs/heads/main","before":"` + before + `","after":"` + after + `","created":false,"deleted":false,"forced":false,` +
			`"commits":[{"id":"` + after + `","message":"many","timestamp":"2024-03-01T10:00:00Z","author":{"name":"Ada","email":"ada@example.com"},` +
			`"added":` + string(added) + `,"removed":[],"modified":` + string(modified) + `}],` +
			`"repository":{"full_name":"Codertocat/Hello-World"},"pusher":{"name":"ada"}}`)
	}
	for n, want := range map[int]bool{1: false, GitHubMaxFilesPerCommit - 1: false, GitHubMaxFilesPerCommit: true} {
		b := body(n)
		ev, err := Parse(githubRequest("push", "d", b, testSecret), b, testSecrets)
		if err != nil {
			t.Fatal(err)
		}
		if p := ev.(Push); p.Truncated != want {
			t.Errorf("a commit listing %d files: Truncated = %v, want %v", n, p.Truncated, want)
		}
	}
}
