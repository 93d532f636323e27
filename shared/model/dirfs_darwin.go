package model

// openNoLinks opens path refusing a symbolic link at its last element (O_NOFOLLOW) with ELOOP;
// a folder on the way swapped for a link after discover listed it is followed.
func openNoLinks(path string) (int, error) { return openLastNoLink(path) }
