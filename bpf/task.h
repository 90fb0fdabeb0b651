/* The current process's executable as a path, walked in the kernel from mm->exe_file: right for a process
 * that has exited by the time user space could read /proc/PID/exe (curl, after its one handshake).
 * CO-RE reads only, bounded (bpf_loop, Linux 5.17+: the verifier checks one step, not every path through the
 * walk): any BPF source that includes "vmlinux.h", <bpf/bpf_helpers.h> and <bpf/bpf_core_read.h> can use it.
 * The path is relative to the root of the mount tree the file is in (as /proc/PID/exe shows it from outside a
 * container); it is never guessed: deleted, on a detached mount, deeper than TASK_EXE_DEPTH_MAX or longer than
 * TASK_EXE_PATH_MAX gives an error instead. */
#ifndef CARNOT_TASK_H
#define CARNOT_TASK_H

#define TASK_EXE_PATH_MAX 256 /* bytes of a path (no NUL); a power of two */
#define TASK_EXE_DEPTH_MAX 40 /* path components plus mount points crossed */

#ifndef ENOENT
#define ENOENT 2
#endif
#ifndef EFAULT
#define EFAULT 14
#endif
#ifndef EXDEV
#define EXDEV 18
#endif
#ifndef ENAMETOOLONG
#define ENAMETOOLONG 36
#endif
#ifndef ELOOP
#define ELOOP 40
#endif

/* Where the path is built, backwards, ending at TASK_EXE_PATH_MAX (per CPU; twice the size, for the bounds). */
struct task_exe_buf {
	char bytes[2 * TASK_EXE_PATH_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct task_exe_buf);
} task_exe_scratch SEC(".maps");

struct task_exe_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	__u32 pos;  /* the path so far starts here */
	__u32 done;
	long result; /* once done: the length, or -errno */
};

/* v % TASK_EXE_PATH_MAX, which the compiler may not drop when it knows v is smaller already: the verifier does
 * not know it, and needs to see the bound where the value is used. */
static __always_inline __u32 task_exe_bounded(__u32 v)
{
	asm volatile("%[v] &= %[mask]" : [v] "+r"(v) : [mask] "i"(TASK_EXE_PATH_MAX - 1));
	return v;
}

/* One step up: a path component, or from a mount's root to where it is mounted. (Fields of the walk go into
 * locals first: inside BPF_CORE_READ they would become relocations against a type the kernel does not have.) */
static long task_exe_step(__u32 index, struct task_exe_walk *w)
{
	struct dentry *dentry = w->dentry, *parent;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt, *up;
	struct task_exe_buf *buf;
	struct qstr name;
	__u32 zero = 0, len, pos = w->pos;

	if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
		up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt) {
			/* the top of a mount tree: a namespace's root, unless the mount was detached */
			w->result = BPF_CORE_READ(mnt, mnt_ns) ? (long)(TASK_EXE_PATH_MAX - pos) : -EXDEV;
			w->done = 1;
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vfsmnt = &up->mnt;
		return 0;
	}
	parent = BPF_CORE_READ(dentry, d_parent);
	name = BPF_CORE_READ(dentry, d_name);
	len = name.len;
	w->done = 1;
	if (parent == dentry) {
		w->result = -EXDEV; /* a root that is no mount's root: an internal file system */
		return 1;
	}
	if (len == 0 || len >= TASK_EXE_PATH_MAX || pos > TASK_EXE_PATH_MAX || pos < len + 1) {
		w->result = -ENAMETOOLONG;
		return 1;
	}
	buf = bpf_map_lookup_elem(&task_exe_scratch, &zero);
	if (!buf) {
		w->result = -EFAULT;
		return 1;
	}
	pos -= len;
	/* bounding changes nothing here (pos and len < TASK_EXE_PATH_MAX); it shows the verifier the bounds */
	if (bpf_probe_read_kernel(&buf->bytes[task_exe_bounded(pos)], task_exe_bounded(len), name.name)) {
		w->result = -EFAULT;
		return 1;
	}
	pos--;
	buf->bytes[task_exe_bounded(pos)] = '/';
	w->pos = pos;
	w->dentry = parent;
	w->done = 0;
	return 0;
}

/* Builds the executable's path in task_exe_scratch, bytes [TASK_EXE_PATH_MAX - n, TASK_EXE_PATH_MAX), and
 * returns n, or -errno: -ENOENT no executable (a kernel thread) or deleted, -EXDEV not reachable from a mount
 * tree's root (a detached mount, an internal file system), -ELOOP too deep, -ENAMETOOLONG too long. */
static __always_inline long task_exe_path(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	struct task_exe_walk w = { .pos = TASK_EXE_PATH_MAX };
	struct vfsmount *vfsmnt;
	struct dentry *dentry;

	if (!exe)
		return -ENOENT;
	dentry = BPF_CORE_READ(exe, f_path.dentry);
	vfsmnt = BPF_CORE_READ(exe, f_path.mnt);
	if (!dentry || !vfsmnt)
		return -ENOENT;
	/* unlinked: unhashed and not a root (what d_path marks " (deleted)") */
	if (!BPF_CORE_READ(dentry, d_hash.pprev) && BPF_CORE_READ(dentry, d_parent) != dentry)
		return -ENOENT;
	w.dentry = dentry;
	w.vfsmnt = vfsmnt;
	w.mnt = container_of(vfsmnt, struct mount, mnt);
	bpf_loop(TASK_EXE_DEPTH_MAX, task_exe_step, &w, 0);
	return w.done ? w.result : -ELOOP;
}

#endif /* CARNOT_TASK_H */
