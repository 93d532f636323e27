package terraform

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/usekarma/karma/shared/gitrepo"
)

// modulesCopies is the folder of Root holding the workspace's own copies of commits' modules
// folders, one per tree id: terraform reads (and a module writing under path.module writes)
// there, never in the modules folder configrepo shares between workspaces.
const modulesCopies = ".karma-modules"

// sharedMarker is the file configrepo writes last into a modules folder it materialized: not
// part of the commit, not copied.
const sharedMarker = ".karma-complete"

// ErrModulesChanged is the cause of a plan or refresh refused because the commit's modules
// folder does not hold the commit's tree (changed on disk since it was written: written again
// the next time the modules of that commit are asked for, so trying again helps), and of an
// apply refused (ErrPlanChanged too) because the workspace's copy of it changed since the plan.
var ErrModulesChanged = errors.New("modules folder changed on disk")

// commitModules gives terraform its own copy of the commit's modules folder ws.Confine, named by
// the folder's tree id (its base name: configrepo's <modules root>/<tree id>): Root/.karma-modules/
// <tree id>, checked to hash to that id (gitrepo.DirTreeID) — reused when it still does, copied
// anew otherwise (files written there by an earlier plan are gone) — and returns ws with
// ModuleDir and Confine in the copy. Copies of other trees no saved plan of Root was made with
// are removed. Called with Root locked; without Confine ws is returned as it is.
//
// A refresh (refreshing) also reuses a copy that holds what a saved plan of Root left there
// (the tree and the files the plan wrote: its record's digest): copied anew, the plan, waiting
// for its review, could no longer be applied. A plan always starts from the tree.
//
// So nothing terraform or a module does while planning or applying one component changes what
// another component, or a later commit with the same tree, deploys: the shared folder is only
// read, and what is read of it is checked to be the tree.
func commitModules(ws Workspace, refreshing bool) (Workspace, error) {
	if ws.Confine == "" {
		return ws, nil
	}
	src, err := filepath.Abs(ws.Confine)
	if err != nil {
		return ws, err
	}
	rel, err := filepath.Rel(src, ws.ModuleDir)
	if err != nil || !inside(ws.ModuleDir, src) {
		return ws, fmt.Errorf("module %s is not in the commit's modules folder %s", ws.ModuleDir, src)
	}
	id := filepath.Base(src)
	dir := filepath.Join(ws.Root, modulesCopies)
	dest := filepath.Join(dir, id)
	if got, err := gitrepo.DirTreeID(dest, id); err != nil || got != id && !(refreshing && plannedCopy(ws.Root, id, got)) {
		if err := copyModules(src, dir, dest, id); err != nil {
			return ws, err
		}
	}
	pruneModules(ws.Root, id)
	ws.Confine, ws.ModuleDir = dest, filepath.Join(dest, rel)
	return ws, nil
}

// copyModules copies src into a temporary folder in dir, checks that it hashes to id, and
// renames it to dest (replacing what is there).
func copyModules(src, dir, dest, id string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == sharedMarker {
			return nil
		}
		target := filepath.Join(tmp, rel)
		switch t := d.Type(); {
		case t.IsDir():
			return os.MkdirAll(target, 0o755)
		case !t.IsRegular():
			return fmt.Errorf("%s: not a regular file (%s)", p, t)
		}
		return copyFile(p, target)
	})
	if err == nil {
		var got string
		if got, err = gitrepo.DirTreeID(tmp, id); err == nil && got != id {
			err = fmt.Errorf("its files hash to tree %s, not %s", got, id)
		}
	}
	if err != nil {
		return fmt.Errorf("the commit's modules folder %s: %w: %v (it is written again from the commit the next time it is used)", src, ErrModulesChanged, err)
	}
	if err := os.RemoveAll(dest); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}

// copyFile copies a regular file, executable (0755) when its owner may execute it, else 0644.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi.Mode()&0o100 != 0 {
		mode = 0o755
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, mode) // whatever the umask: the mode is part of the tree id
}

// pruneModules removes the copies in Root/.karma-modules other than keep's and those a saved
// plan of Root records (planModulesFile): Apply checks a plan's copy is as the plan left it.
func pruneModules(root, keep string) {
	entries, err := os.ReadDir(filepath.Join(root, modulesCopies))
	if err != nil {
		return
	}
	used := map[string]bool{keep: true}
	records, _ := filepath.Glob(filepath.Join(root, planDir, "*"+modulesRecordExt))
	for _, r := range records {
		if id, _, err := readModulesRecord(r); err == nil {
			used[id] = true
		}
	}
	for _, e := range entries {
		if !used[e.Name()] {
			_ = os.RemoveAll(filepath.Join(root, modulesCopies, e.Name()))
		}
	}
}

// plannedCopy reports whether a saved plan of Root was made with the copy of tree id and left
// it holding digest.
func plannedCopy(root, id, digest string) bool {
	records, _ := filepath.Glob(filepath.Join(root, planDir, "*"+modulesRecordExt))
	for _, r := range records {
		if rid, d, err := readModulesRecord(r); err == nil && rid == id && d == digest {
			return true
		}
	}
	return false
}

// modulesRecordExt ends the file Plan keeps next to a saved plan: "<tree id> <digest>", the
// copy of the modules folder the plan was made with and what it held once planned
// (gitrepo.DirTreeID, files the plan wrote there included).
const modulesRecordExt = ".modules"

func planModulesFile(planFile string) string {
	return strings.TrimSuffix(planFile, ".tfplan") + modulesRecordExt
}

func readModulesRecord(file string) (id, digest string, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", "", err
	}
	id, digest, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
	if !ok || id == "" || digest == "" || strings.ContainsAny(id, `/\.`) {
		return "", "", fmt.Errorf("%s: not a modules record", file)
	}
	return id, digest, nil
}

// modulesDigest is what the workspace's copy of the modules folder (ws.Confine after
// commitModules) holds now, for the record of a plan made with it.
func modulesDigest(ws Workspace) (string, error) {
	return gitrepo.DirTreeID(ws.Confine, filepath.Base(ws.Confine))
}

// checkPlanModules refuses (ErrPlanChanged, ErrModulesChanged) to apply a plan whose copy of the
// modules folder is no longer what the plan left there: terraform reads the modules' files
// again while applying (file(), templates, archives), and would apply other bytes than those
// planned. A plan made with a commit's modules (ws.Confine) without a record is refused too.
func checkPlanModules(ws Workspace, planFile string) error {
	file := planModulesFile(planFile)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) && ws.Confine == "" {
		return nil // modules outside the repository: not the commit's, not copied
	}
	id, digest, err := readModulesRecord(file)
	if err != nil {
		return fmt.Errorf("%w: %w: which copy of the modules folder the plan was made with: %v", ErrPlanChanged, ErrModulesChanged, err)
	}
	dir := filepath.Join(ws.Root, modulesCopies, id)
	got, err := gitrepo.DirTreeID(dir, id)
	if err != nil {
		return fmt.Errorf("%w: %w: %v", ErrPlanChanged, ErrModulesChanged, err)
	}
	if got != digest {
		return fmt.Errorf("%w: %w: %s is not as the plan left it (a file was written, changed or removed there since)", ErrPlanChanged, ErrModulesChanged, dir)
	}
	return nil
}
