"""Validates one .ics file for the SMTP integration tests.

Usage: check_ics.py libical|icalendar FILE

- libical: parses with libical (through GObject introspection: Debian's python3-gi and
  gir1.2-ical-3.0) and runs its RFC 5546 (iTIP) restriction check for the file's METHOD;
  every violation becomes an X-LIC-ERROR property, which this script reports.
- icalendar: parses with the `icalendar` package from PyPI and reports its parse errors.

Exit status: 0 valid, 1 invalid (details on stdout), 3 the validator is not installed
(stdout says what is missing).
"""
import sys


def libical(data):
    try:
        import gi

        gi.require_version("ICalGLib", "3.0")
        from gi.repository import ICalGLib
    except (ImportError, ValueError) as e:
        print(f"python3-gi with gir1.2-ical-3.0 (libical) ({e})")
        return 3
    comp = ICalGLib.Component.new_from_string(data)
    if comp is None:
        print("libical could not parse the file")
        return 1
    parse_errors = comp.count_errors()
    valid = comp.check_restrictions()
    if parse_errors or not valid or comp.count_errors():
        print(comp.as_ical_string())
        return 1
    print(f"libical: valid iTIP {comp.get_method().value_nick.upper()}")
    return 0


def python_icalendar(data):
    try:
        import icalendar
    except ImportError as e:
        print(f"the icalendar Python package ({e})")
        return 3
    cal = icalendar.Calendar.from_ical(data)
    problems = [f"{c.name}: {c.errors}" for c in cal.walk() if getattr(c, "errors", None)]
    events = cal.walk("VEVENT")
    if len(events) != 1:
        problems.append(f"expected one VEVENT, found {len(events)}")
    for ev in events:
        for prop in ("UID", "DTSTAMP", "DTSTART", "DTEND", "SEQUENCE", "ORGANIZER"):
            if prop not in ev:
                problems.append(f"VEVENT lacks {prop}")
        if "DTSTART" in ev and "DTEND" in ev and not ev["DTEND"].dt > ev["DTSTART"].dt:
            problems.append("DTEND is not after DTSTART")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"icalendar {icalendar.__version__}: valid {cal['METHOD']}")
    return 0


def main():
    which, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8", newline="") as f:
        data = f.read()
    return {"libical": libical, "icalendar": python_icalendar}[which](data)


if __name__ == "__main__":
    sys.exit(main())
