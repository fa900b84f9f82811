// Package ipcbackend is baton's driver for coordination between the
// processes of one host through System V IPC, registered for the URL
// scheme ipc:// (import it for its side effect, or import backend/all).
package ipcbackend
