package terraform

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ownerFile (in Root) names the component whose workspace Root is: "<env>/<type>/<nickname>".
//
// A Root holds one component's state. Workspaces.For gives each component its own folder, but a
// file system that ignores case (macOS's and Windows' by default) makes one folder of
// prod/vpc/Core and prod/vpc/core — two components, as Git and Parameter Store tell them apart —
// and the second would be planned and applied against the first's state: its resources
// replaced by the other's. begin therefore claims Root for its component on first use and
// refuses a Root that names another one.
const ownerFile = ".karma-component"

// claimRoot records id as the component of root (locked) when nothing does yet, and refuses a
// root recorded for another component.
func claimRoot(root, id string) error {
	path := filepath.Join(root, ownerFile)
	got, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		_, err := writeIfChanged(path, []byte(id+"\n"))
		return err
	case err != nil:
		return err
	}
	if owner := string(bytes.TrimSpace(got)); owner != id {
		return fmt.Errorf("the workspace %s is component %s's (%s), not %s's: two components whose names differ only in case share one folder on a file system that ignores case — rename one of them (nothing was planned or applied)",
			root, owner, path, id)
	}
	return nil
}
