package model

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestPromotionOrderReportsEveryProblem(t *testing.T) {
	t.Parallel()
	s := Settings{Promotion: PromotionOrder{
		{Env: "dev", Soak: "ten minutes"},
		{Env: "_base"},
		{Env: "qa", Soak: "-5m"},
		{Env: "dev"},
		{Env: "", Soak: "1h"},
		{Env: "prod", Soak: "1h", Approval: true},
	}}
	want := []string{
		`/promotion/0/soak: "ten minutes": want a duration such as "30m", "2h" or "300ms"`,
		`/promotion/1/env: "_base" is not an environment name (a folder of iac/, not _base)`,
		`/promotion/2/soak: "-5m": a soak cannot be negative`,
		`/promotion/3/env: "dev" is listed twice (also at /promotion/0): a change passes each environment once`,
		`/promotion/4/env: want an environment name`,
		`/promotion/5/soak: prod is the last environment: there is no next one to wait for`,
	}
	if got := settingsErrors(t, s.Validate()); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	one := Settings{Promotion: PromotionOrder{{Env: "prod"}}}
	if got := settingsErrors(t, one.Validate()); len(got) != 1 || !strings.HasPrefix(got[0], "/promotion: one environment promotes nowhere") {
		t.Errorf("a one-environment order: %v", got)
	}
}

func TestPromotionOrderFromKarmaJSON(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{SettingsFile: {Data: []byte(`{"promotion": [
		{"env": "dev", "soak": "300ms"}, {"env": "qa", "soak": "2h"}, {"env": "prod", "approval": true}]}`)}}
	s, err := LoadSettingsFS(fsys, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Promotion.String(); got != "dev → qa → prod" {
		t.Errorf("order %q", got)
	}
	if dev, _ := s.Promotion.Step("dev"); dev.SoakDuration() != 300*time.Millisecond || dev.Approval {
		t.Errorf("dev step %+v", dev)
	}
	if prod, ok := s.Promotion.Step("prod"); !ok || !prod.Approval || prod.SoakDuration() != 0 {
		t.Errorf("prod step %+v", prod)
	}
	if _, ok := s.Promotion.Step("sandbox"); ok {
		t.Error("sandbox is not in the order")
	}
	// A change concerning prod, sandbox and dev flows dev then prod; sandbox is not in the order.
	if got := s.Promotion.Path([]string{"prod", "sandbox", "dev"}); !reflect.DeepEqual(got, []string{"dev", "prod"}) {
		t.Errorf("path %v", got)
	}
	bad := fstest.MapFS{SettingsFile: {Data: []byte(`{"promotion": [{"env": "dev", "soak_time": "1m"}, {"env": "prod"}]}`)}}
	if _, err := LoadSettingsFS(bad, Settings{}); err == nil || !strings.Contains(err.Error(), `unknown field "soak_time"`) {
		t.Errorf("a misspelt gate: %v", err)
	}
}
