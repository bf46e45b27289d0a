"""What people read: the terminal and Markdown renderings, the HTML report and the
generated reference pages."""
