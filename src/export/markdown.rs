//! A report as Markdown: headings, the answer lines with their `[n]`, and a numbered list of
//! references with the quoted passages as block quotes.

use super::Report;

pub fn markdown(report: &Report) -> String {
    let mut out = format!("# {}\n", single_line(&report.question));
    for section in &report.sections {
        out.push('\n');
        match &section.heading {
            Some(heading) => out.push_str(&format!("## {}\n\n", single_line(heading))),
            None => out.push_str("## 回答\n\n"),
        }
        for line in section
            .answer
            .lines()
            .filter(|line| !line.trim().is_empty())
        {
            out.push_str(line.trim());
            out.push_str("  \n");
        }
        if section.references.is_empty() {
            continue;
        }
        out.push_str(if section.found {
            "\n### 出典\n\n"
        } else {
            "\n### 関連する箇所\n\n"
        });
        for (index, reference) in section.references.iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            out.push_str(&format!("[{}] {}\n", reference.n, reference.source_line()));
            for line in reference
                .quote
                .lines()
                .filter(|line| !line.trim().is_empty())
            {
                out.push_str(&format!("> {}\n", line.trim()));
            }
        }
    }
    out
}

fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::sample;

    #[test]
    fn each_group_has_its_answer_and_numbered_references() {
        let text = markdown(&sample());
        let expected = "# 伴走支援の体制は\n\n## 北海道\n\n担当職員11名を配置する。[1]  \n課長補佐が総括する。[1][2]  \n\n### 出典\n\n[1] 別添3 希望する伴走支援（総務省） p.3 別添 3-1 希望する伴走支援(北海道)\n> 担当職員 11 名を配置する。\n\n[2] 事例集（総務省）\n> 課長補佐 1 名を実務総括担当と位置付け\n\n## 沖縄県\n\nお探しの内容に答える記述は見つかりませんでした。  \n";
        assert_eq!(text, expected);
    }
}
