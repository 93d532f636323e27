package terraform

// The dependency lock file (.terraform.lock.hcl) pins each provider of a configuration to one
// version and the checksums of its packages. Terraform reads and writes it only in the root
// module's folder, the working directory — Root here, whose root module is Karma's main.tf —
// never in a called module's folder; `terraform init` creates it there at the first init and
// afterwards keeps every version it records (only -upgrade selects again). So a lock file a
// commit ships with its module, components/<type>/.terraform.lock.hcl (what `terraform
// providers lock` writes and teams commit), would be ignored, and a workspace would keep
// deploying the providers it happened to select at its first init, whatever the commit pins.
//
// When the module's folder holds one, it is the workspace's: copied into Root before init,
// part of what decides that init runs again (initKey), and init runs with -lockfile=readonly,
// which installs exactly what the file records, verifies each package against its checksums
// and fails, changing nothing, when the configuration needs a provider it does not pin (or in
// another version than it records). Plan records the lock file it planned with next to the
// saved plan, and Apply refuses a plan made with another one (terraform would apply with the
// providers installed now). Without one, the workspace keeps its own (the weaker mode: the
// versions of its first init, a provider added later in the newest version then allowed).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// depLockFile is terraform's dependency lock file, in Root and in a module's folder.
const depLockFile = ".terraform.lock.hcl"

// lockRecordExt ends the file Plan keeps next to a saved plan: Root's dependency lock file as
// the plan was made with it (none: no record).
const lockRecordExt = ".lock.hcl"

// ErrProviderLock is the cause of an init that failed on the dependency lock file: a provider
// the configuration needs that the commit's lock file does not pin (or not in a version its
// constraints allow, or without a checksum of the package installed), or a constraint the
// workspace's own lock file does not satisfy.
var ErrProviderLock = errors.New("providers not as the dependency lock file pins them")

func planLockFile(planFile string) string {
	return strings.TrimSuffix(planFile, ".tfplan") + lockRecordExt
}

// moduleLock returns the dependency lock file of ws's module folder, nil when it has none.
func moduleLock(ws Workspace) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(ws.ModuleDir, depLockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the module's dependency lock file: %w", err)
	}
	return data, nil
}

// pinLock makes the module's dependency lock file Root's (when it has one: pinned).
func pinLock(ws Workspace) (pinned bool, err error) {
	data, err := moduleLock(ws)
	if err != nil || data == nil {
		return false, err
	}
	if _, err := writeIfChanged(filepath.Join(ws.Root, depLockFile), data); err != nil {
		return false, err
	}
	return true, nil
}

// moduleLockName names the module's lock file for an error: relative to the commit's modules
// folder ("<type>/.terraform.lock.hcl") when it is a commit's, else its path.
func moduleLockName(ws Workspace) string {
	if ws.Confine != "" {
		if rel, err := filepath.Rel(ws.Confine, filepath.Join(ws.ModuleDir, depLockFile)); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.ToSlash(rel) + " of the commit's modules folder"
		}
	}
	return filepath.Join(ws.ModuleDir, depLockFile)
}

// lockErrors are terraform's errors (1.x) about the dependency lock file: a provider it does not
// pin (read-only), a package matching none of its checksums, a locked version the constraints
// no longer allow, a file it cannot read.
var lockErrors = []string{
	"Provider dependency changes detected",
	"checksums previously recorded in the dependency lock file",
	"does not match configured version constraint",
	"failed to read dependency lock file",
}

// lockFailure says which lock file a failed init was made with. log is terraform's output: an
// error about the lock file (lockErrors) makes the error ErrProviderLock.
func lockFailure(ws Workspace, pinned bool, log string, err error) error {
	log = strings.Join(strings.Fields(log), " ") // terraform wraps its messages at 78 columns
	onLock := false
	for _, e := range lockErrors {
		onLock = onLock || strings.Contains(log, e)
	}
	switch {
	case pinned && onLock:
		return fmt.Errorf("%w: %s, which Karma installs read-only (terraform init -lockfile=readonly): "+
			"every provider the module needs must be pinned there, in a version its constraints allow, with a "+
			"checksum of the package for %s/%s (terraform providers lock -platform=...): %w",
			ErrProviderLock, moduleLockName(ws), runtime.GOOS, runtime.GOARCH, err)
	case pinned:
		return fmt.Errorf("terraform init with the dependency lock file %s (read-only): %w", moduleLockName(ws), err)
	case onLock:
		return fmt.Errorf("%w: the module ships no %s, so the workspace keeps its own (%s: the versions its first init "+
			"selected), which init does not change: commit one with the module (terraform providers lock) to choose them: %w",
			ErrProviderLock, depLockFile, filepath.Join(ws.Root, depLockFile), err)
	}
	return err
}

// rootLock is Root's dependency lock file (nil: none).
func rootLock(root string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(root, depLockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// checkPlanLock refuses (ErrPlanChanged, ErrProviderLock) to apply a plan made with another
// dependency lock file than Root's now: another plan or a refresh since installed the providers
// another commit pins. A plan without a record was made with none.
func checkPlanLock(root, planFile string) error {
	planned, err := os.ReadFile(planLockFile(planFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: the dependency lock file the plan was made with: %v", ErrPlanChanged, err)
	}
	now, err := rootLock(root)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPlanChanged, err)
	}
	if !bytes.Equal(planned, now) {
		return fmt.Errorf("%w: %w: %s is not the dependency lock file the plan was made with (the providers of another commit were installed since)",
			ErrPlanChanged, ErrProviderLock, filepath.Join(root, depLockFile))
	}
	return nil
}
