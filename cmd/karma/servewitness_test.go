package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A serve that cannot open its audit witness (here: no parameter store to hold it) refuses to
// start before anything runs. It refused only after listening, writing --addr-file (so a
// supervisor took it for started) and starting the stages, the reconciler, the promotions and
// the expiry sweep, which it then abandoned mid-way.
func TestServeRefusesAWitnessItCannotOpenBeforeStarting(t *testing.T) {
	repo, state := demoRepo(t)
	addrFile := filepath.Join(t.TempDir(), "addr")
	code, _, errOut := karmaWith(t, &globals{testRunner: stubTerraform{}}, "serve", "--addr", "127.0.0.1:0", "--addr-file", addrFile, "--insecure-local",
		"--repo", repo, "--state-dir", state, "--params-backend", "none", "--secret", "github:acme/config=x", "--reconcile", "0")
	if code != 2 || !strings.Contains(errOut, "--params-backend none has none") {
		t.Errorf("serve with a witness it cannot open: exit %d %s; want exit 2 naming the witness", code, errOut)
	}
	if _, err := os.Stat(addrFile); err == nil {
		t.Error("serve wrote --addr-file, announcing it listened, before refusing to start")
	}
}
