package webhook

import (
	"errors"
	"net/http"
	"testing"
)

// The fuzz targets sign whatever body they get, so that inputs reach the payload decoders, and
// check that Parse never panics and keeps its contract. `go test` runs the seeds only; run them
// with e.g. go test -run '^$' -fuzz '^FuzzParseGitHub$' -fuzztime 15s -fuzzminimizetime 1s ./shared/webhook/
// (the default minimisation time of 60 s stalls short runs on the 9 KB seeds).

func FuzzParseGitHub(f *testing.F) {
	for _, n := range sampleNames(f, "github") {
		f.Add("push", "application/json", sample(f, "github", n))
	}
	f.Add("ping", "application/json", []byte(`{"zen":"z","hook_id":1}`))
	f.Add("push", "application/x-www-form-urlencoded", []byte(`payload=%7B%22ref%22%3A1%7D`))
	f.Add("issues", "application/json", []byte(`{"repository":{"full_name":7}}`))
	f.Add("push", "application/json", []byte(`{"ref":"refs/heads/x","before":"`+zeroSHA+`","after":"`+ghBefore+`","repository":{"full_name":"a/b"},"commits":[{"id":"`+ghBefore+`","timestamp":1e999}]}`))
	f.Fuzz(func(t *testing.T, event, contentType string, body []byte) {
		r := githubRequest(event, "d", body, testSecret)
		r.Header.Set("Content-Type", contentType)
		checkParse(t, r, body, StaticSecrets{"github:*": testSecret})
	})
}

func FuzzParseGitLab(f *testing.F) {
	for _, n := range sampleNames(f, "gitlab") {
		f.Add("Push Hook", sample(f, "gitlab", n))
		f.Add("Tag Push Hook", sample(f, "gitlab", n))
	}
	f.Add("System Hook", []byte(`{"event_name":"push","project":{"path_with_namespace":"a/b"}}`))
	f.Add("Push Hook", []byte(`{"ref":"refs/tags/v","before":"`+zeroSHA+`","after":"`+glAfter+`","project":{"path_with_namespace":"a/b"},"total_commits_count":-1}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		checkParse(t, gitlabRequest(event, body, testSecret), body, testSecrets)
	})
}

func checkParse(t *testing.T, r *http.Request, body []byte, s Secrets) {
	t.Helper()
	ev, err := Parse(r, body, s)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || ev != nil {
			t.Fatalf("error %v (%T) with event %v", err, err, ev)
		}
		switch e.Status {
		case 400, 401, 415:
		default:
			t.Fatalf("unexpected status %d: %s", e.Status, e.Reason)
		}
		return
	}
	_ = DeliveryKey(ev)
	switch p := ev.(type) {
	case Push:
		if !validSHA(p.Before) || !validSHA(p.After) || p.Ref == "" || p.Repo.FullName == "" {
			t.Fatalf("push with invalid fields: %+v", p)
		}
		if b, tg := SplitRef(p.Ref); b != p.Branch || tg != p.Tag {
			t.Fatalf("branch/tag %q/%q for ref %q", p.Branch, p.Tag, p.Ref)
		}
		if p.Created != IsZeroSHA(p.Before) && p.Provider != GitHub {
			t.Fatalf("created %v for before %s", p.Created, p.Before)
		}
		if p.Deleted && (len(p.Commits) != 0 || p.Truncated) {
			t.Fatalf("deleted push with commits: %+v", p)
		}
		for _, f := range ChangedFiles(p) {
			if f.Added && f.Removed {
				t.Fatalf("file both added and removed: %+v", f)
			}
		}
	case Ping, Ignored:
	default:
		t.Fatalf("unexpected event %T", ev)
	}
}
