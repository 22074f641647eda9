//go:build !linux

package ring

import "os"

// reserve is a no-op where fallocate is not available: the file stays sparse.
func reserve(*os.File, int64) error { return nil }
