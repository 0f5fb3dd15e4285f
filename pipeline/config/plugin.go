package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// checkBinary says what is wrong with path as a plugin binary, or "" when it is an executable
// file.
func checkBinary(path string) string {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file (build it with `make plugins`)"
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pe.Err.Error()
		}
		return err.Error()
	case fi.IsDir():
		return "is a directory, not a plugin binary"
	case !fi.Mode().IsRegular():
		return "is not a regular file"
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0:
		return "is not executable (chmod +x it)"
	}
	return ""
}

// FileSHA256 is the hex SHA-256 of the file at path: what a stage's sha256 pins.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
