// Package paramstest is the conformance suite every params.Store implementation passes (the
// embedded SQLite store and the SSM store, the latter against moto in CI or a real account).
//
// Contract of Run:
//   - newStore is called once per subtest and may return the same store, or stores on one
//     shared server: every subtest writes only below its own prefix
//     /karma-conformance/<random>/<subtest>, so reruns against a long-lived server never
//     collide and the subtests run in parallel.
//   - Nothing is cleaned up: a fresh server (or temp file) per test run is the caller's choice.
//   - Only behaviour both SSM and the embedded store promise is checked; backend-specific rules
//     (validation messages, tier downgrades, type changes, History) are tested by each backend.
package paramstest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/params"
)

// Run runs the suite as parallel subtests of t.
func Run(t *testing.T, newStore func(t *testing.T) params.Store) {
	t.Helper()
	root := fmt.Sprintf("/karma-conformance/%012x", rand.Uint64()>>16) // math/rand/v2: seeded per process
	tests := []struct {
		name string
		run  func(t *testing.T, s params.Store, prefix string)
	}{
		{"PutGet", testPutGet},
		{"VersionsIncreaseByOne", testVersions},
		{"IdenticalPutIsNoop", testIdentical},
		{"GetByPath", testGetByPath},
		{"GetByPathPaginates", testPagination},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"WrittenAtAgrees", testWrittenAt},
		{"RecreatedVersionIsAnotherWrite", testRecreated},
		{"AdvancedTier", testAdvanced},
		{"SecureString", testSecure},
		{"StringList", testStringList},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t), root+"/"+tc.name)
		})
	}
}

func put(t *testing.T, s params.Store, in params.PutInput) params.PutResult {
	t.Helper()
	res, err := s.Put(t.Context(), in)
	if err != nil {
		t.Fatalf("Put(%s): %v", in.Name, err)
	}
	return res
}

func get(t *testing.T, s params.Store, name string) params.Parameter {
	t.Helper()
	p, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return p
}

func wantResult(t *testing.T, what string, got params.PutResult, version int64, changed bool) {
	t.Helper()
	if got.Version != version || got.Changed != changed {
		t.Fatalf("%s: got %+v, want {Version:%d Changed:%v}", what, got, version, changed)
	}
}

func names(ps []params.Parameter) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func testPutGet(t *testing.T, s params.Store, prefix string) {
	name := prefix + "/network/main/config"
	res := put(t, s, params.PutInput{Name: name, Value: `{"cidr":"10.0.0.0/16"}`, Description: "karma: test"})
	wantResult(t, "first Put", res, 1, true)
	p := get(t, s, name)
	if p.Name != name || p.Value != `{"cidr":"10.0.0.0/16"}` || p.Version != 1 {
		t.Fatalf("Get: got %+v", p)
	}
	if p.Type != params.TypeString {
		t.Fatalf("Get: Type %q, want the default %q", p.Type, params.TypeString)
	}
	if p.LastModified.IsZero() {
		t.Fatalf("Get: LastModified is zero")
	}
}

func testVersions(t *testing.T, s params.Store, prefix string) {
	name := prefix + "/app/api/runtime"
	for v := int64(1); v <= 4; v++ {
		res := put(t, s, params.PutInput{Name: name, Value: fmt.Sprintf("value-%d", v)})
		wantResult(t, fmt.Sprintf("Put #%d", v), res, v, true)
	}
	if p := get(t, s, name); p.Version != 4 || p.Value != "value-4" {
		t.Fatalf("Get after 4 puts: got version %d value %q", p.Version, p.Value)
	}
}

func testIdentical(t *testing.T, s params.Store, prefix string) {
	name := prefix + "/db/main/config"
	wantResult(t, "first Put", put(t, s, params.PutInput{Name: name, Value: "same"}), 1, true)
	wantResult(t, "identical Put", put(t, s, params.PutInput{Name: name, Value: "same"}), 1, false)
	wantResult(t, "explicit default type", put(t, s, params.PutInput{
		Name: name, Value: "same", Type: params.TypeString, Description: "another description",
	}), 1, false)
	wantResult(t, "changed Put", put(t, s, params.PutInput{Name: name, Value: "other"}), 2, true)
	wantResult(t, "identical again", put(t, s, params.PutInput{Name: name, Value: "other"}), 2, false)
	if p := get(t, s, name); p.Version != 2 || p.Value != "other" {
		t.Fatalf("Get: got version %d value %q, want 2 %q", p.Version, p.Value, "other")
	}
}

func testGetByPath(t *testing.T, s params.Store, prefix string) {
	base := prefix + "/iac"
	want := []string{ // sorted; put in another order below
		base + "/a/config", base + "/a/runtime", base + "/b", base + "/b-x/config",
		base + "/b/x/y/z/deep", base + "/c_1/config",
	}
	outside := []string{base + "x/config", base + "-other/config", prefix + "/ia/config"}
	order := slices.Clone(want)
	slices.Reverse(order)
	for _, n := range append(order, outside...) {
		put(t, s, params.PutInput{Name: n, Value: "v:" + n})
	}
	for _, path := range []string{base, base + "/"} {
		got, err := s.GetByPath(t.Context(), path)
		if err != nil {
			t.Fatalf("GetByPath(%s): %v", path, err)
		}
		if !slices.Equal(names(got), want) {
			t.Fatalf("GetByPath(%s):\n got %q\nwant %q", path, names(got), want)
		}
		for _, p := range got {
			if p.Value != "v:"+p.Name || p.Version != 1 || p.Type != params.TypeString {
				t.Fatalf("GetByPath(%s): bad parameter %+v", path, p)
			}
		}
	}
	sub, err := s.GetByPath(t.Context(), base+"/b")
	if err != nil || !slices.Equal(names(sub), []string{base + "/b/x/y/z/deep"}) {
		t.Fatalf("GetByPath(%s/b): got %q, %v", base, names(sub), err)
	}
	empty, err := s.GetByPath(t.Context(), prefix+"/nothing/here")
	if err != nil || len(empty) != 0 {
		t.Fatalf("GetByPath(empty): got %q, %v; want no parameters and no error", names(empty), err)
	}
}

func testPagination(t *testing.T, s params.Store, prefix string) {
	const n = 23 // more than two pages of SSM's maximum page size (10)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("%s/many/p%02d/config", prefix, i))
	}
	order := slices.Clone(want)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, name := range order {
		put(t, s, params.PutInput{Name: name, Value: "x"})
	}
	got, err := s.GetByPath(t.Context(), prefix+"/many")
	if err != nil {
		t.Fatalf("GetByPath: %v", err)
	}
	if !slices.Equal(names(got), want) {
		t.Fatalf("GetByPath: got %d parameters %q\nwant %d %q", len(got), names(got), n, want)
	}
}

func testNotFound(t *testing.T, s params.Store, prefix string) {
	name := prefix + "/missing/config"
	if _, err := s.Get(t.Context(), name); !errors.Is(err, params.ErrNotFound) {
		t.Fatalf("Get(missing): got %v, want an error matching params.ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), name); !errors.Is(err, params.ErrNotFound) {
		t.Fatalf("Delete(missing): got %v, want an error matching params.ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s params.Store, prefix string) {
	name, keep := prefix+"/svc/gone/config", prefix+"/svc/kept/config"
	put(t, s, params.PutInput{Name: name, Value: "v1"})
	put(t, s, params.PutInput{Name: name, Value: "v2"})
	put(t, s, params.PutInput{Name: keep, Value: "k"})
	if err := s.Delete(t.Context(), name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(t.Context(), name); !errors.Is(err, params.ErrNotFound) {
		t.Fatalf("Get after Delete: got %v, want params.ErrNotFound", err)
	}
	got, err := s.GetByPath(t.Context(), prefix+"/svc")
	if err != nil || !slices.Equal(names(got), []string{keep}) {
		t.Fatalf("GetByPath after Delete: got %q, %v; want only %s", names(got), err, keep)
	}
	// As in SSM, a deleted parameter's history goes with it: re-creating starts at version 1.
	wantResult(t, "Put after Delete", put(t, s, params.PutInput{Name: name, Value: "v2"}), 1, true)
}

func testAdvanced(t *testing.T, s params.Store, prefix string) {
	name := prefix + "/big/config"
	value := strings.Repeat("0123456789abcdef", 5*1024/16) // 5 KB: needs the Advanced tier
	if params.TierFor(value) != params.TierAdvanced {
		t.Fatalf("TierFor(5 KB) = %s, want %s", params.TierFor(value), params.TierAdvanced)
	}
	wantResult(t, "Put 5 KB (tier left empty)", put(t, s, params.PutInput{Name: name, Value: value}), 1, true)
	wantResult(t, "Put 5 KB again", put(t, s, params.PutInput{Name: name, Value: value}), 1, false)
	if p := get(t, s, name); p.Value != value {
		t.Fatalf("Get: value of %d bytes, want %d bytes", len(p.Value), len(value))
	}
	explicit := prefix + "/big/explicit"
	in := params.PutInput{Name: explicit, Value: value + "!", Tier: params.TierAdvanced}
	wantResult(t, "Put with Tier=Advanced", put(t, s, in), 1, true)
}

func testSecure(t *testing.T, s params.Store, prefix string) {
	name, secret := prefix+"/db/main/password", "s3cr3t-P@ss,word"
	res := put(t, s, params.PutInput{Name: name, Value: secret, Type: params.TypeSecureString})
	wantResult(t, "Put SecureString", res, 1, true)
	wantResult(t, "identical SecureString", put(t, s, params.PutInput{
		Name: name, Value: secret, Type: params.TypeSecureString}), 1, false)
	p := get(t, s, name)
	if p.Value != secret || p.Type != params.TypeSecureString {
		t.Fatalf("Get: got type %q value %q, want the decrypted SecureString", p.Type, p.Value)
	}
	if r := p.Redacted(); r == secret || strings.Contains(r, secret) {
		t.Fatalf("Redacted() = %q leaks the secret", r)
	}
	got, err := s.GetByPath(t.Context(), prefix+"/db")
	if err != nil || len(got) != 1 || got[0].Value != secret || got[0].Type != params.TypeSecureString {
		t.Fatalf("GetByPath: got %+v, %v; want the decrypted SecureString", got, err)
	}
	if plain := (params.Parameter{Type: params.TypeString, Value: "v"}); plain.Redacted() != "v" {
		t.Fatalf("Redacted() of a String = %q, want its value", plain.Redacted())
	}
}

func testStringList(t *testing.T, s params.Store, prefix string) {
	name := prefix + "/net/main/subnets"
	put(t, s, params.PutInput{Name: name, Value: "subnet-a,subnet-b", Type: params.TypeStringList})
	if p := get(t, s, name); p.Value != "subnet-a,subnet-b" || p.Type != params.TypeStringList {
		t.Fatalf("Get: got type %q value %q", p.Type, p.Value)
	}
}

// testWrittenAt: a version's LastModified is the same whichever read returns it (Get, GetByPath,
// GetByPathDescribed, History), to the millisecond: a parameter version's change key carries it
// (message.ParameterVersionKey), made by ingest from History and looked for by the reconciler
// from GetByPathDescribed.
func testWrittenAt(t *testing.T, s params.Store, prefix string) {
	ctx := context.Background()
	name := prefix + "/app/api/runtime"
	put(t, s, params.PutInput{Name: name, Value: `{"a":1}`})
	put(t, s, params.PutInput{Name: name, Value: `{"a":2}`})
	ms := func(p params.Parameter) int64 { return p.LastModified.UnixMilli() }
	cur := get(t, s, name)
	if cur.LastModified.IsZero() {
		t.Fatal("Get: no LastModified")
	}
	h, ok := s.(params.Historian)
	if !ok {
		t.Skip("the store keeps no history")
	}
	hist, err := h.History(ctx, name)
	if err != nil || len(hist) != 2 {
		t.Fatalf("History: %d versions, %v", len(hist), err)
	}
	if ms(hist[1]) != ms(cur) {
		t.Errorf("History's LastModified of version 2 = %s, Get's = %s", hist[1].LastModified, cur.LastModified)
	}
	for what, read := range map[string]func(context.Context, string) ([]params.Parameter, error){
		"GetByPath": s.GetByPath, "GetByPathDescribed": func(ctx context.Context, p string) ([]params.Parameter, error) {
			return params.GetByPathDescribed(ctx, s, p)
		},
	} {
		ps, err := read(ctx, prefix)
		if err != nil || len(ps) != 1 {
			t.Fatalf("%s: %v, %v", what, ps, err)
		}
		if ms(ps[0]) != ms(cur) {
			t.Errorf("%s's LastModified = %s, Get's = %s", what, ps[0].LastModified, cur.LastModified)
		}
	}
}

// testRecreated: a parameter deleted and created again starts again at version 1, and its
// version 1 is told from the one before the deletion by the time it was written — what a
// change names with the version (change.detected's parameter.written_at), and what
// params.GetWritten checks before resolve deploys the version: the version of that number
// written at another time is refused (params.ErrRecreated), never returned in its place.
func testRecreated(t *testing.T, s params.Store, prefix string) {
	ctx := context.Background()
	name := prefix + "/vpc/core/config"
	wantResult(t, "first Put", put(t, s, params.PutInput{Name: name, Value: `{"life":1}`}), 1, true)
	old := get(t, s, name)
	sameMs := func(a, b time.Time) bool { return a.UnixMilli() == b.UnixMilli() }
	var now params.Parameter
	// Deleted and created again, until the new version 1 is written in another millisecond
	// than the old one (nearly always the first time).
	for i := 0; ; i++ {
		if err := s.Delete(ctx, name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		wantResult(t, "Put after Delete", put(t, s, params.PutInput{Name: name, Value: `{"life":2}`}), 1, true)
		if now = get(t, s, name); !sameMs(now.LastModified, old.LastModified) {
			break
		}
		if i == 1000 {
			t.Fatalf("every version 1 written again says it was written at %s, as the one deleted: the time cannot tell them apart", old.LastModified)
		}
	}
	if now.LastModified.Before(old.LastModified.Truncate(time.Millisecond)) {
		t.Fatalf("the version 1 written after the deletion says %s, before the deleted one's %s", now.LastModified, old.LastModified)
	}
	check := func(what string, v int64, at time.Time, want string, wantErr error) {
		t.Helper()
		p, err := params.GetWritten(ctx, s, name, v, at)
		switch {
		case wantErr != nil && !errors.Is(err, wantErr):
			t.Errorf("%s: %q, %v; want an error matching %v", what, p.Value, err, wantErr)
		case wantErr != nil && p.Value != "":
			t.Errorf("%s: returned the value %q with its error", what, p.Value)
		case wantErr == nil && (err != nil || p.Value != want || p.Version != v):
			t.Errorf("%s: version %d %q, %v; want version %d %q", what, p.Version, p.Value, err, v, want)
		}
	}
	check("the version 1 written after the deletion", 1, now.LastModified, `{"life":2}`, nil)
	check("the version 1 deleted (now the current version)", 1, old.LastModified, "", params.ErrRecreated)
	check("version 1, time not said: the number decides", 1, time.Time{}, `{"life":2}`, nil)
	if _, err := params.GetWritten(ctx, s, name, 1, old.LastModified); err == nil || !strings.Contains(err.Error(), "re-created") ||
		!strings.Contains(err.Error(), name) || !errors.Is(err, params.ErrVersionGone) {
		t.Errorf("the version 1 deleted: %v; want an error naming %s, saying it was re-created, matching ErrVersionGone", err, name)
	}
	wantResult(t, "second Put", put(t, s, params.PutInput{Name: name, Value: `{"life":2,"v":2}`}), 2, true)
	check("the version 1 written after the deletion, from the history", 1, now.LastModified, `{"life":2}`, nil)
	check("the version 1 deleted, from the history", 1, old.LastModified, "", params.ErrRecreated)
	check("a version 3 written before the deletion, not reached again", 3, old.LastModified, "", params.ErrRecreated)
	check("a version 3, time not said", 3, time.Time{}, "", params.ErrVersionGone)
	if h, ok := s.(params.Historian); ok {
		hist, err := h.History(ctx, name)
		if err != nil || len(hist) != 2 || !sameMs(hist[0].LastModified, now.LastModified) {
			t.Errorf("History: %+v, %v; want 2 versions, the first written at %s", hist, err, now.LastModified)
		}
	}
}
