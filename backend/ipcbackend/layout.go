package ipcbackend

// Layout of the namespace's shared memory segment (native byte order:
// every process of one host shares it):
//
//	[0, headerSize)                       header
//	[headerSize, +slots*slotSize)         lock table
//	then two halves of blobCap bytes      group and session state (JSON),
//	                                      written alternately
//
// Header fields, by offset.
const (
	hdrMagic   = 0  // uint64: segMagic once initialised
	hdrVersion = 8  // uint32
	hdrSlots   = 12 // uint32: lock table entries
	hdrBlobCap = 16 // uint32: bytes of each half
	hdrActive  = 20 // uint32: half holding the current state (0 or 1)
	hdrLen0    = 24 // uint32: length of half 0's state
	hdrLen1    = 28 // uint32
	hdrGen     = 32 // uint64: incremented by every state write
	hdrNSLen   = 40 // uint32: length of the namespace
	hdrCRC0    = 44 // uint32: CRC-32C of half 0's state
	hdrCRC1    = 48 // uint32
	hdrNS      = 64 // the namespace, up to maxNamespaceLen bytes

	headerSize = 512
	segMagic   = 0x4350495f4e4f5442 // "BTON_IPC" little-endian
	segVersion = 1

	// minBlob is the least room a segment keeps for each copy of the state.
	minBlob = 16 << 10
)

// Lock table entries (slotSize bytes each), by offset within the entry.
// An entry is found by open addressing on the SHA-256 of the lock key; it
// is allocated under the namespace mutex and never moves or goes away
// while the segment lives. The exclusive holder writes its entry without
// the mutex (the lock semaphore excludes every other writer), under a
// sequence counter that readers check (odd while a write is under way).
const (
	slotSeq     = 0  // uint32
	slotUsed    = 4  // uint32: 1 once allocated
	slotHash    = 8  // [16]byte: first half of SHA-256(key)
	slotLast    = 24 // uint64: last fencing token granted
	slotMode    = 32 // uint32: modeFree, modeExclusive, modeShared
	slotSemKey  = 36 // int32: the lock semaphore's key
	slotToken   = 40 // uint64: the exclusive holder's token
	slotSession = 48 // uint64: the exclusive holder's session
	slotSize    = 64
)

// Lock modes recorded in the lock table.
const (
	modeFree      = 0
	modeExclusive = 1
	modeShared    = 2
)
