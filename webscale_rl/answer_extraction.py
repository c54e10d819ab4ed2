"""The final answer in a model response: the last \\boxed{}, else an "Answer:" line, else the
last non-empty line, with the wrappers models put around it stripped."""

import re


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), honouring nested braces."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
        # Unbalanced: try an earlier box.
    return None


_ANSWER_LINE = re.compile(r"\banswer\s*(?:is)?\s*[:：]\s*(.*)$", re.IGNORECASE)


def extract_answer(text: str) -> str:
    """The final answer in a model response; '' when there is nothing."""
    if not isinstance(text, str):
        return ""
    # Reasoning models think first; only what follows the last </think> is the answer.
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    boxed = _last_boxed(text)
    if boxed is not None:
        return clean_answer(boxed)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        match = _ANSWER_LINE.search(lines[i].replace("*", ""))
        if match:
            # 'Answer:' alone on its line: the answer is on the next one.
            found = match.group(1) or (lines[i + 1] if i + 1 < len(lines) else "")
            return clean_answer(found)
    return clean_answer(lines[-1]) if lines else ""


def clean_answer(answer: str) -> str:
    """Strip wrappers models put around an answer: $..$, \\text{..}, markdown, quotes, final dot."""
    answer = answer.strip()
    answer = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", answer)
    answer = answer.replace("\\%", "%").replace("\\$", "$").replace("\\!", "")
    # LaTeX spacing ('\\,' and '\\ '), but not a '\\\\' row break followed by a space.
    answer = re.sub(r"(?<!\\)\\[, ]", " ", answer)
    answer = answer.strip().rstrip(".").strip("*_`").strip()
    if len(answer) >= 2 and answer[0] == answer[-1] == "$":
        answer = answer[1:-1].strip()
    if len(answer) >= 2 and answer[0] in "\"'“‘" and answer[-1] in "\"'”’":
        answer = answer[1:-1].strip()
    return answer.rstrip(".").strip()
