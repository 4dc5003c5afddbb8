function (clicks) { return {display: "none"}; }
