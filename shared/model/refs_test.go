package model

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestExtractReferences(t *testing.T) {
	t.Parallel()
	rules := compileRules(Settings{}.Defaults())
	cases := []struct {
		name  string
		cfg   string
		want  []Reference
		diags []string // substrings, in order
	}{
		{name: "nickname keys with prefix and alias", cfg: `{"vpc_nickname":"core","s3_bucket_nickname":"logs","cluster_nickname":"main"}`,
			want: []Reference{
				{Target: "ecs-cluster/main", Kind: RefInferred, Pointer: "/cluster_nickname", Rule: "cluster_nickname", Keys: []string{"*"}},
				{Target: "s3-bucket/logs", Kind: RefInferred, Pointer: "/s3_bucket_nickname", Rule: "s3_bucket_nickname", Keys: []string{"*"}},
				{Target: "vpc/core", Kind: RefInferred, Pointer: "/vpc_nickname", Rule: "vpc_nickname", Keys: []string{"*"}},
			}},
		{name: "nested functions", cfg: `{"functions":{"echo":{"s3_bucket_nickname":"code"}}}`,
			want: []Reference{{Target: "s3-bucket/code", Kind: RefInferred, Pointer: "/functions/echo/s3_bucket_nickname", Rule: "s3_bucket_nickname", Keys: []string{"*"}}}},
		{name: "src pair", cfg: `{"integration":{"src_type":"lambda","src_nickname":"api"}}`,
			want: []Reference{{Target: "lambda/api", Kind: RefInferred, Pointer: "/integration/src_nickname", Rule: "src_type+src_nickname", Keys: []string{"*"}}}},
		{name: "src nickname alone is not a type", cfg: `{"src_nickname":"api"}`, want: nil},
		{name: "interpolation", cfg: `{"env":["x=${vpc/core.runtime.vpc_id}","${vpc/core.runtime.subnets.0}"]}`,
			want: []Reference{
				{Target: "vpc/core", Kind: RefInterpolation, Pointer: "/env/0", Rule: "${vpc/core.runtime.vpc_id}", Keys: []string{"vpc_id"}},
				{Target: "vpc/core", Kind: RefInterpolation, Pointer: "/env/1", Rule: "${vpc/core.runtime.subnets.0}", Keys: []string{"subnets"}},
			}},
		{name: "escaped and foreign templates", cfg: `{"a":"$${vpc/core.runtime.vpc_id}","b":"${var.region}","c":"${aws:username}"}`, want: nil},
		{name: "malformed karma reference", cfg: `{"a":"${vpc/.runtime.x}"}`, diags: []string{"malformed reference"}},
		{name: "non-string nickname", cfg: `{"vpc_nickname":3}`, diags: []string{"vpc_nickname should name a vpc nickname"}},
		{name: "pointer escaping", cfg: `{"a/b":{"vpc_nickname":"x"}}`,
			want: []Reference{{Target: "vpc/x", Kind: RefInferred, Pointer: "/a~1b/vpc_nickname", Rule: "vpc_nickname", Keys: []string{"*"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			obj, d := decodeObject("c.json", []byte(c.cfg))
			if d != nil {
				t.Fatal(d)
			}
			got, _, diags := extractReferences(obj, rules)
			if !reflect.DeepEqual(got, c.want) {
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(c.want)
				t.Errorf("refs\n got %s\nwant %s", gb, wb)
			}
			if len(diags) != len(c.diags) {
				t.Fatalf("diagnostics %v, want %d", diags, len(c.diags))
			}
			for i, s := range c.diags {
				if !strings.Contains(diags[i].Message, s) {
					t.Errorf("diagnostic %d = %q, want %q", i, diags[i].Message, s)
				}
			}
		})
	}
}

func TestParseKarmaBlock(t *testing.T) {
	t.Parallel()
	obj, _ := decodeObject("c.json", []byte(`{"karma":{"extends":"site/defaults","depends_on":["vpc/core",{"ref":"s3-bucket/logs","consumes":["arn"]},{"ref":"dns/zone","consumes":[],"redeploy":"on-any-apply"},{"ref":"dns/other","redeploy":"on-consumed-change"}]}}`))
	kb, diags := parseKarmaBlock(obj)
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	if kb.extends != "site/defaults" || len(kb.dependsOn) != 4 {
		t.Fatalf("got %+v", kb)
	}
	if got := kb.dependsOn[1].Keys; !reflect.DeepEqual(got, []string{"arn"}) {
		t.Errorf("object form keys = %v", got)
	}
	if got := kb.dependsOn[2].Keys; len(got) != 0 || got == nil {
		t.Errorf("ordering-only keys = %#v, want empty non-nil", got)
	}
	for i, want := range []string{"", "", RedeployOnAnyApply, ""} {
		if got := kb.dependsOn[i].Redeploy; got != want {
			t.Errorf("depends_on %d: redeploy %q, want %q", i, got, want)
		}
	}
	bad, _ := decodeObject("c.json", []byte(`{"karma":{"extend":"x","depends_on":["nope", 3, {"ref":"a/b","consumes":"k"},
		{"ref":"a/b","redeploy":"always"}, {"ref":"a/b","consume":["k"]}]}}`))
	_, diags = parseKarmaBlock(bad)
	if len(diags) != 6 {
		t.Fatalf("want 6 problems reported at once, got %d: %v", len(diags), diags)
	}
	for _, want := range []string{`"redeploy": want "on-consumed-change" or "on-any-apply", found always`, `unknown key "consume" (known: ref, consumes, redeploy)`} {
		if !strings.Contains(fmt.Sprint(diags), want) {
			t.Errorf("diagnostics lack %q:\n%s", want, diags)
		}
	}
}
