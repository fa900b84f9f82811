// Package driver is the service-provider interface that baton's backend
// drivers implement. Users never import it: they hold a *backend.Backend,
// which adds argument checks, error wrapping, retries, the session loop,
// grant tracking and emulation of whatever a driver lacks.
//
// A driver implements the small required interface [Conn] and, where its
// store can do better than the emulation, any of the optional interfaces:
//
//   - [LockWaiter]: block until a lock is granted (ZooKeeper predecessor
//     watch, etcd watch, Consul blocking query, a database blocking call).
//     Without it the backend polls TryLock with jittered backoff.
//   - [SharedLocker]: shared (read) locks. Without it shared locks are
//     reported as unimplemented.
//   - [LockBreaker]: force-release a lock held by anyone (tooz's break_).
//   - [GroupWatcher]: pushed group membership events. Without it the backend
//     polls Members and diffs the listings.
//   - [HolderWatcher]: pushed lock-holder changes, which make leader
//     observation native. Without it the backend polls Holder.
//
// Drivers never import package backend's internals or each other; they
// register themselves with backend.Register from an init function that
// does nothing else.
//
// Keys: the backend hands drivers opaque, non-empty UTF-8 keys of at most a
// few KiB. Group IDs, member IDs and lock keys may contain any character,
// including '/', spaces, "..", and NUL-free unicode. A driver whose store
// restricts keys encodes them losslessly (or hashes them with a scheme that
// cannot collide in practice, documented) and never lets two keys collide.
// The backend already separates user lock names from internal ones (leader
// locks) by prefix, so a driver must not add its own interpretation.
package driver
