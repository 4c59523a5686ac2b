const CSS = "__SWITCHBOARD_CSS__";
