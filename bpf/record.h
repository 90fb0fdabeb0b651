/* The one definition of what `carnot record` (record.bpf.c) hands to user space: system calls of the followed
 * process tree, as an entry event (arguments, and the strings and structs they point to, read in the kernel)
 * and an exit event (return value, and what the call wrote back), plus the tree's forks, execs and exits.
 * src/record/events.ts mirrors it; test/record/layout.test.ts compiles this header and fails when they differ. */
#ifndef CARNOT_RECORD_H
#define CARNOT_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* System call numbers below this are described (x86-64: 0..462 today). */
#define RECORD_NR_MAX 512
/* Bytes of a captured string, NUL included: a longer one is cut and marked (RECORD_F_STR*_CUT). */
#define RECORD_STR_MAX 256
/* execve's argv: the first RECORD_ARGV_MAX entries, RECORD_ARGV_LEN bytes of each (strace's -s 32). */
#define RECORD_ARGV_MAX 8
#define RECORD_ARGV_LEN 32
/* Bytes of a struct read whole: a sockaddr (sockaddr_storage is 128), open_how, clone_args, stat's head. */
#define RECORD_BLOB_MAX 128

/* Index of each counter in the object's `stats` array map. */
#define RECORD_STAT_ATTEMPTED 0 /* events the kernel tried to write */
#define RECORD_STAT_DROPPED 1   /* of those, lost: the ring buffer was full */
#define RECORD_STAT_COUNT 2

enum record_kind {
	RECORD_EV_ENTER = 1, /* a call begins: args, data read from the pointers they hold */
	RECORD_EV_EXIT = 2,  /* a call returns: ret, args as the registers hold them, data written back */
	RECORD_EV_FORK = 3,  /* a followed task made a task: ret = its tid; args[0] its tgid, [1] RECORD_SHARE_*, [2] its parent's tgid */
	RECORD_EV_EXEC = 4,  /* a followed process ran a new program: ret = the tid that called execve; args[0..4] uid, gid, euid, egid, effective caps */
	RECORD_EV_GONE = 5,  /* a followed task exited: ret = its exit code; args[0] 1 when it was the last of its process */
};

/* RECORD_EV_FORK args[1]: what the new task shares with its creator (the clone flags that matter to the tables). */
#define RECORD_SHARE_THREAD 1 /* same thread group (CLONE_THREAD) */
#define RECORD_SHARE_FILES 2  /* same fd table (CLONE_FILES) */
#define RECORD_SHARE_FS 4     /* same cwd (CLONE_FS) */
#define RECORD_SHARE_VM 8     /* same memory (CLONE_VM) */

/* record_event.flags */
#define RECORD_F_STR0_CUT 1  /* str0 was longer than RECORD_STR_MAX - 1 bytes */
#define RECORD_F_STR1_CUT 2
#define RECORD_F_ARGV_MORE 4 /* argv has more than RECORD_ARGV_MAX entries */
#define RECORD_F_STR0_FAULT 8  /* str0's pointer could not be read (NULL, unmapped) */
#define RECORD_F_STR1_FAULT 16
#define RECORD_F_BLOB_FAULT 32
#define RECORD_F_REREAD 64   /* EXIT: str0/str1 are the entry's strings, read again (the entry could not) */

/* What the kernel reads for each call, by system call number: fields of a descriptor word, each the index + 1 of
 * the argument it concerns (0 = nothing). The user side builds the table from its syscall taxonomy. */
#define RECORD_D_FIELD(d, n) (((d) >> (3 * (n))) & 7)
#define RECORD_D_STR0 0      /* entry: a string (a path, memfd_create's name) into str0 */
#define RECORD_D_STR1 1      /* entry: a second string (rename's destination) into str1 */
#define RECORD_D_ADDR_IN 2   /* entry: a sockaddr, its length the next argument, into blob */
#define RECORD_D_STRUCT_IN 3 /* entry: the head of a struct (open_how, clone_args) into blob */
#define RECORD_D_ARGV 4      /* entry: an argv array into argv */
#define RECORD_D_ADDR_OUT 5  /* exit: a sockaddr, the next argument pointing to its length, into blob */
#define RECORD_D_FDS_OUT 6   /* exit: an int[2] (pipe, socketpair) into blob */
#define RECORD_D_STR_OUT 7   /* exit: a string of ret bytes (getcwd) into str0 */
#define RECORD_D_STAT_OUT 8  /* exit: the head of a struct stat or statx into blob */

struct record_event {   /* an 80-byte header, then data_len bytes of struct record_data */
	__u64 ts_ns;    /*  0 bpf_ktime_get_ns */
	__u32 pid;      /*  8 tgid */
	__u32 tid;      /* 12 */
	__u16 kind;     /* 16 enum record_kind */
	__u16 nr;       /* 18 system call number (ENTER, EXIT) */
	__u16 flags;    /* 20 RECORD_F_* */
	__u16 data_len; /* 22 */
	__s64 ret;      /* 24 see enum record_kind */
	__u64 args[6];  /* 32 */
};
_Static_assert(sizeof(struct record_event) == 80, "record_event layout");

/* After the header when data_len is not 0: its head, up to the end of the last field the event uses (a path
 * entry sends the lengths and str0's bytes; a stat exit the blob too, not str1 and argv), so the ring holds each
 * event in about the room it needs. A field past data_len is absent; bytes between used fields mean nothing. */
struct record_data {
	__u16 len0;                 /*   0 bytes in str0, NUL included (0: none) */
	__u16 len1;                 /*   2 bytes in str1 */
	__u16 blob_len;             /*   4 bytes in blob */
	__u16 argc;                 /*   6 argv entries read (at most RECORD_ARGV_MAX) */
	char str0[RECORD_STR_MAX];  /*   8 */
	__u8 blob[RECORD_BLOB_MAX]; /* 264 */
	char str1[RECORD_STR_MAX];  /* 392 */
	char argv[RECORD_ARGV_MAX][RECORD_ARGV_LEN]; /* 648 each NUL-terminated (cut to RECORD_ARGV_LEN - 1 bytes) */
};
_Static_assert(sizeof(struct record_data) == 904, "record_data layout");

/* An event as it is put together before it is sent (data_len bytes of data after the header). */
struct record_full {
	struct record_event e;
	struct record_data d;
};

/* The only read-only global of record.bpf.c, set before load. */
struct record_config {
	__u32 desc[RECORD_NR_MAX]; /* descriptor word per system call number */
};

#endif
