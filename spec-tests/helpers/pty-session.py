"""
Drives a program at a terminal, as a person would: the program runs on a pseudo-terminal (Python's
pty module; Node has none), the steps type text and wait for what the program prints.

  python3 pty-session.py probe                          prints "ok" where a pty can be opened
  python3 pty-session.py CWD STEPS_JSON PROGRAM ARGS...

STEPS_JSON is a list of {"send": TEXT} (typed as is: "\\r" is Enter, "\\u0003" Ctrl-C, "\\u0004"
Ctrl-D) and {"expect": REGEX} (wait until the screen, from the line after the previous match on,
matches; the line still being written, such as the prompt, may match again). After the steps,
waits for the program to exit. Prints one JSON line: {"transcript": the screen's lines, "status":
EXIT_STATUS or null, "failed": null or why}.
Every wait is bounded (a failing program never hangs the test), never a fixed sleep.
"""
import json
import os
import pty
import re
import select
import sys
import time

BOUND_S = 30.0
ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(output):
    """
    The lines as a terminal shows them: carriage returns, cursor moves along the line (CSI n G) and
    erasures (CSI K, CSI J) applied, the way readline redraws its prompt; other sequences dropped.
    """
    lines = []
    line = []
    cursor = 0
    i = 0
    while i < len(output):
        char = output[i]
        escape = ESCAPE.match(output, i) if char == "\x1b" else None
        if escape is not None:
            argument, command = escape.group(1), escape.group(2)
            if command == "G":
                cursor = max(int(argument or "1") - 1, 0)
            elif command in "KJ":
                line = [] if argument == "2" else line[:cursor]
            i = escape.end()
            continue
        if char == "\r":
            cursor = 0
        elif char == "\n":
            lines.append("".join(line))
            line, cursor = [], 0
        else:
            line[cursor:cursor + 1] = [char] if cursor < len(line) else [" "] * (cursor - len(line)) + [char]
            cursor += 1
        i += 1
    lines.append("".join(line))
    return "\n".join(lines)


def main():
    if sys.argv[1:] == ["probe"]:
        pid, fd = pty.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        os.close(fd)
        print("ok")
        return
    cwd, steps, program = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execvp(program[0], program)
    raw = b""
    seen = 0
    failed = None
    ended = False

    def text():
        return screen(raw.decode("utf-8", "replace"))

    def read_some(deadline):
        nonlocal raw, ended
        ready, _, _ = select.select([fd], [], [], max(0.0, min(0.2, deadline - time.time())))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk == b"":
                ended = True
            raw += chunk

    for step in steps:
        if "send" in step:
            os.write(fd, step["send"].encode("utf-8"))
            continue
        pattern = re.compile(step["expect"], re.M)
        deadline = time.time() + BOUND_S
        while True:
            screen_text = text()
            match = pattern.search(screen_text, seen)
            if match is not None:
                # The next search starts on the next line; or on this one again when it is the line
                # still being written (the prompt), which a redraw may replace.
                end_of_line = screen_text.find("\n", match.end())
                seen = screen_text.rfind("\n", 0, match.end()) + 1 if end_of_line < 0 else end_of_line + 1
                break
            if ended or time.time() > deadline:
                failed = "never printed %r" % step["expect"]
                break
            read_some(deadline)
        if failed is not None:
            break

    status = None
    deadline = time.time() + BOUND_S
    while failed is None:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done != 0:
            status = os.waitstatus_to_exitcode(code)
            break
        if time.time() > deadline:
            failed = "did not exit"
            break
        read_some(deadline)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    # What was printed before the exit, to the end.
    while not ended:
        read_some(time.time() + 0.2)
        if not select.select([fd], [], [], 0)[0]:
            break
    print(json.dumps({"transcript": text(), "status": status, "failed": failed}))


main()
