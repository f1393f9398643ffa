// Package bootenv reads and writes bootloader environments: U-Boot's
// (single or redundant, as fw_env.config describes them) and GRUB's
// 1024-byte grubenv block. It is written from the formats; no external program
// (fw_setenv, grub-editenv) runs on the device.
//
// # Model
//
// An [Env] is the set of variables in memory; a [Store] is where it lives.
// [Open] makes a Store from a [Config]; [Store.Apply] is the one-call form the
// installer uses: load, change, and save only if something changed.
//
// # U-Boot layout
//
// One copy is a CRC32 (IEEE, little-endian) over the data area, then for a
// redundant pair one flag byte, then the data area: "name=value\0" entries
// ended by an empty entry, padded to the copy's size. The pad byte found on
// load (0x00 or 0xFF) is kept on save; a new env pads with 0x00 like U-Boot.
//
// Redundant pairs use one of two flag schemes, chosen as U-Boot's tools do:
// on NOR flash, active (1) and obsolete (0); everywhere else a counter that
// grows by one on each save, where 0 is newer than 255 (wrap-around).
//
// # Atomic saves
//
// A redundant save writes the copy that is not current, syncs it, and only then
// marks the old copy obsolete (active scheme); with the counter scheme the
// higher counter alone makes it current. A power cut at any moment leaves the
// old or the new environment, never a mix. A single env held by a whole regular
// file (uboot.env on a mounted FAT partition, grubenv) is replaced by a
// synced temporary file renamed over it. A single env at an offset in a device
// is rewritten in place: this cannot be atomic, use a redundant pair.
//
// # Failures are reported, never papered over
//
// A copy with a bad CRC is named by [UBootEnv.Damaged]; the good copy is used
// and the next save overwrites the damaged one. When no copy is valid, Load
// returns [ErrBadCRC]: it never falls back to default variables (fw_setenv
// does, and so writes a near-empty environment over a device's settings). To
// put an env on blank storage, fill [Store.New] and Save it. A change that
// does not fit returns [ErrTooFull] and changes nothing.
//
// # Limits
//
//   - U-Boot: little-endian CRC only (no mkenvimage -b); no UBI volumes and no
//     libubootenv YAML configuration; no ".flags" access checks (it is kept as
//     a plain variable); an empty value means unset, as in U-Boot.
//   - MTD: the env must start on an erase-block boundary; NAND bad blocks in
//     the env's range are an error ([ErrBadBlock]), not skipped; locked NOR
//     sectors are not unlocked; erase and write go through MEMERASE64 and
//     pwrite on the mtd character device.
//   - FAT: uboot.env is reached through a mounted file, not by editing the FAT
//     filesystem itself.
//   - No locking against another writer (fw_setenv's lock file is not taken):
//     Lifeboat is the only writer while the rescue runs.
//   - GRUB: the block must be exactly 1024 bytes in a file; comment lines are
//     kept but moved before the variables on save.
package bootenv
